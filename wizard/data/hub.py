"""Datasets from Hugging Face or ModelScope, by id.

A job with no network must fail in seconds with a message that says what to do, not after the hubs'
clients have retried for half a minute (datasets retries 5 times with backoff: ~25 s here). So before
asking a hub we check that its host answers at all; if it does not, Hugging Face is asked in offline
mode, which still finds a dataset already in the local cache.
"""
from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from wizard.data.readers import Problems, Row, read_folder
from wizard.errors import DataError

# owner/name, or a bare canonical name such as `imdb`; anything with a data-file suffix is a local path.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".ndjson", ".txt")
PROBE_TIMEOUT_S = 3.0


def looks_like_hub_id(path: str) -> bool:
    return bool(HUB_ID.match(path)) and not path.lower().endswith(FILE_SUFFIXES)


def which_hub(hub: str) -> str:
    if hub == "auto":
        return "modelscope" if os.environ.get("USE_MODELSCOPE_HUB", "").lower() in ("1", "true", "yes") else "huggingface"
    return hub


def sample_indices(n: int, k: int | None, seed: int) -> list[int]:
    """Row indices for `id#k`, the same for the same seed. Asking for more rows than there are repeats
    the rows (ms-swift does the same: `self-cognition#500` on a 108-row set is the usual way to weight it)."""
    if k is None or n == 0:
        return list(range(n))
    rng = random.Random(seed)
    if k >= n:
        return list(range(n)) * (k // n) + sorted(rng.sample(range(n), k % n))
    return sorted(rng.sample(range(n), k))


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _reachable(url: str) -> tuple[bool, str]:
    """Can we open a TCP connection to the host (or the proxy that reaches it)? A thread bounds the
    wait, because name resolution ignores socket timeouts."""
    target = urlparse(url)
    host, port = target.hostname or url, target.port or 443
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or os.environ.get("ALL_PROXY") \
        or os.environ.get("all_proxy")
    if proxy:
        p = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = p.hostname or host, p.port or 8080
    result: dict = {}

    def probe():
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            result["ok"] = True
        except OSError as exc:
            result["err"] = f"{host}: {exc.strerror or exc}"

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(PROBE_TIMEOUT_S + 1)
    if result.get("ok"):
        return True, ""
    return False, result.get("err", f"{host}: no answer in {PROBE_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def _hf_offline(on: bool):
    # datasets and huggingface_hub read HF_HUB_OFFLINE once, at import; set their flags for this call.
    if not on:
        yield
        return
    import datasets.config as dcfg
    import huggingface_hub.constants as hcfg

    saved = dcfg.HF_HUB_OFFLINE, dcfg.HF_DATASETS_OFFLINE, hcfg.HF_HUB_OFFLINE
    dcfg.HF_HUB_OFFLINE = dcfg.HF_DATASETS_OFFLINE = hcfg.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        dcfg.HF_HUB_OFFLINE, dcfg.HF_DATASETS_OFFLINE, hcfg.HF_HUB_OFFLINE = saved


def _local_hint(ds_id: str, hub: str) -> str:
    get = (f"`hf download {ds_id} --repo-type dataset --local-dir DIR`" if hub == "huggingface"
           else f"`modelscope download --dataset {ds_id} --local_dir DIR`")
    return (f"use a local copy: where there is network run {get}, copy DIR here and set the dataset path to DIR "
            "or to one of its .jsonl/.json/.csv/.parquet files")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def load_hub(src, seed: int, problems: Problems) -> tuple[list[Row], int, str]:
    """(rows, rows in the split before sampling, hub name). Raises DataError when the hub cannot serve it."""
    hub = which_hub(src.hub)
    if hub == "modelscope":
        ds, label = _modelscope(src, problems)
    else:
        ds, label = _huggingface(src)
    if isinstance(ds, list):  # ModelScope files read by our own readers
        idx = sample_indices(len(ds), src.sample, seed)
        return [ds[i] for i in idx], len(ds), hub
    n = len(ds)
    idx = sample_indices(n, src.sample, seed)
    picked = ds.select(idx) if src.sample is not None else ds
    return [Row(f"{label}:row {i}", value, i) for i, value in zip(idx, picked.to_list())], n, hub


def _label(src) -> str:
    return f"{src.path}{':' + src.subset if src.subset else ''}[{src.split}]"


def _huggingface(src):
    try:
        import datasets
    except ImportError:
        raise DataError(f"{src.path}: the `datasets` library is not installed; pip install datasets") from None
    offline = _truthy("HF_HUB_OFFLINE") or _truthy("HF_DATASETS_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE")
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    ok, why = (False, "HF_HUB_OFFLINE is set") if offline else _reachable(endpoint)
    try:
        with _hf_offline(not ok):
            ds = datasets.load_dataset(src.path, src.subset, split=src.split)
    except Exception as exc:  # the hub raises many types: offline, missing, gated, bad split
        if not ok:
            raise DataError(f"{src.path}: not a local file, and the Hugging Face hub could not be reached ({why}); "
                            f"the dataset is not in the local cache either; {_local_hint(src.path, 'huggingface')}") from None
        raise DataError(f"{src.path}: could not load it from the Hugging Face hub ({_first_line(exc)}); check the id, "
                        f"subset and split (dataset split: {src.split}), or {_local_hint(src.path, 'huggingface')}") from None
    return ds, _label(src)


def _modelscope(src, problems: Problems):
    endpoint = os.environ.get("MODELSCOPE_DOMAIN") or "https://www.modelscope.cn"
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    ok, why = _reachable(endpoint)
    if not ok:
        raise DataError(f"{src.path}: not a local file, and the ModelScope hub could not be reached ({why}); "
                        f"{_local_hint(src.path, 'modelscope')}")
    try:
        try:
            from modelscope.msdatasets import MsDataset
        except ImportError:
            # MsDataset needs modelscope's [datasets] extras; the plain download works without them.
            from modelscope.hub.snapshot_download import dataset_snapshot_download

            folder = Path(dataset_snapshot_download(src.path))
            return read_folder(folder, problems, src.split), _label(src)
        ds = MsDataset.load(src.path, subset_name=src.subset, split=src.split)
        return (ds.to_hf_dataset() if hasattr(ds, "to_hf_dataset") else ds), _label(src)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{src.path}: could not load it from ModelScope ({_first_line(exc)}); check the id, subset "
                        f"and split, or {_local_hint(src.path, 'modelscope')}") from None
