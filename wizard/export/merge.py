"""Merge a run's adapter into its base and save a standalone model folder.

The base is loaded in 16/32-bit, never 4-bit, even for QLoRA runs: merging into 4-bit weights either is
refused or rounds the adapter away, and the adapter was trained against the dequantized weights anyway.
The folder holds safetensors, config, generation config, tokenizer and chat template, and nothing of peft,
so `AutoModelForCausalLM.from_pretrained(folder)` loads it anywhere (vLLM, TGI, llama.cpp's converter).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from wizard import run_folder as rf
from wizard.errors import UserError
from wizard.hardware import PRECISIONS, torch_dtype

# What a model folder is made of; only these are removed when --force writes over an earlier export.
_MODEL_FILES = ("*.safetensors", "*.bin", "*.index.json", "config.json", "generation_config.json", "tokenizer*",
                "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "chat_template.*",
                "export.json")


def check_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder", hint="give a folder path for the merged model")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out}: the folder exists and is not empty",
                        hint="choose another --out, or add --force to replace the model files in it")


def auto_dtype(ref: str) -> str:
    """The base model's own precision (from its config), so a bf16 model stays bf16 and fp32 stays fp32."""
    from transformers import AutoConfig

    from wizard.inference.loading import model_files

    cfg = AutoConfig.from_pretrained(model_files(ref).weights)
    dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)
    if isinstance(dtype, str):
        import torch

        dtype = getattr(torch, dtype.removeprefix("torch."), None)
    return next((name for name in PRECISIONS if torch_dtype(name) == dtype), "bf16")


def merged_model(ref: str, dtype, gpu: bool = True):
    """`load_for_inference` with the adapter merged and nothing of training or of bitsandbytes left in the config."""
    from wizard.inference.loading import load_for_inference

    loaded = load_for_inference(ref, dtype=dtype, merge=True, gpu=gpu)
    model = loaded.model
    if hasattr(model, "peft_config"):  # merge=True already unloaded peft; a leftover would need peft to load
        raise RuntimeError("the adapter was not merged (model still wraps peft)")
    model.config.use_cache = True  # training turns the cache off; inference wants it back
    for key in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(model.config, key):
            delattr(model.config, key)
    return loaded


def merge_run(ref: str, out: Path | None = None, dtype: str = "auto", force: bool = False,
              log=print) -> Path:
    """Write the merged model of run folder `ref` to `out` (default RUN_DIR/merged); return the folder."""
    run_dir = Path(ref)
    if not rf.is_run_dir(run_dir):
        raise UserError(f"{ref}: not a run folder (no spec.yaml and run.json), so there is no adapter to merge",
                        hint="give a run folder such as runs/<name>-<time>; for a GGUF of a plain model use "
                             f"`tune-wizard export {ref} --gguf f16`")
    out = Path(out) if out else run_dir / "merged"
    check_out_dir(out, force)
    if dtype == "auto":
        dtype = auto_dtype(ref)
    if dtype not in PRECISIONS:
        raise UserError(f"--dtype {dtype}: expected one of auto, {', '.join(PRECISIONS)}")
    t0 = time.time()
    log(f"loading {run_dir} in {dtype} ...")
    loaded = merged_model(str(run_dir), torch_dtype(dtype))
    model = loaded.model
    # Write beside the target and swap in, so a failed export never leaves a half folder that looks complete.
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        (tmp / "export.json").write_text(json.dumps({
            "source_run": str(run_dir.resolve()), "base_model": loaded.base_id,
            "adapter": str(loaded.adapter) if loaded.adapter else None, "dtype": dtype,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }, indent=2) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        remove_model_files(out)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(f.stat().st_size for f in out.glob("*.safetensors")) / 2**20
    log(f"merged model written to {out} ({dtype}, {size:.0f} MiB, {time.time() - t0:.1f} s)")
    return out


def remove_model_files(folder: Path) -> None:
    for pattern in _MODEL_FILES:
        for f in folder.glob(pattern):
            if f.is_file():
                f.unlink()
