"""Datasets from Hugging Face or ModelScope, by id.

A job with no network must fail in seconds with a message that says what to do, not after the hubs'
clients have retried for half a minute (datasets retries 5 times with backoff: ~25 s here). So the hub is
asked first, under a deadline (wizard.hubs); when it cannot be asked, Hugging Face is read in offline mode,
which still finds a dataset already in the local cache.
"""
from __future__ import annotations

import random
from pathlib import Path

from wizard import hubs
from wizard.data.readers import Problems, Row, read_folder
from wizard.errors import DataError

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".ndjson", ".txt")


def looks_like_hub_id(path: str) -> bool:
    """owner/name, or a bare canonical name such as `imdb`; anything with a data-file suffix is a local path."""
    return hubs.is_repo_id(path, bare_name_ok=True) and not path.lower().endswith(FILE_SUFFIXES)


def sample_indices(n: int, k: int | None, seed: int) -> list[int]:
    """Row indices for `id#k`, the same for the same seed. Asking for more rows than there are repeats
    the rows (ms-swift does the same: `self-cognition#500` on a 108-row set is the usual way to weight it)."""
    if k is None or n == 0:
        return list(range(n))
    rng = random.Random(seed)
    if k >= n:
        return list(range(n)) * (k // n) + sorted(rng.sample(range(n), k % n))
    return sorted(rng.sample(range(n), k))


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
    hub = hubs.which(src.hub)
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
    reply = hubs.ask("huggingface", src.path, "dataset")
    if reply.found is False:
        raise DataError(f"{src.path}: not a local file, and {reply.problem}; check the id, or "
                        f"{_local_hint(src.path, 'huggingface')}")
    try:
        with hubs.hf_offline(reply.found is None):
            ds = datasets.load_dataset(src.path, src.subset, split=src.split)
    except Exception as exc:  # the hub raises many types: offline, missing, gated, bad split
        if reply.found is None:
            raise DataError(f"{src.path}: not a local file, and {reply.problem}; the dataset is not in the local "
                            f"cache either; {_local_hint(src.path, 'huggingface')}") from None
        raise DataError(f"{src.path}: could not load it from the Hugging Face hub ({_first_line(exc)}); check the id, "
                        f"subset and split (dataset split: {src.split}), or {_local_hint(src.path, 'huggingface')}") from None
    return ds, _label(src)


def _modelscope(src, problems: Problems):
    reply = hubs.ask("modelscope", src.path, "dataset")
    if not reply.found:
        raise DataError(f"{src.path}: not a local file, and {reply.problem}; {_local_hint(src.path, 'modelscope')}")
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
