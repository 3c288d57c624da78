"""Load a trained run (base + adapter) or a plain model for generation.

Shared by chat, serve, export, dpo_eval and the identity demo, so all of them see the same model the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard import run_folder as rf
from wizard.errors import UserError
from wizard.hardware import pick_precision, torch_dtype


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    name: str = ""                 # what to call it (run name or model id)
    base_id: str = ""              # the base model id from the spec, or the model ref itself
    adapter: Path | None = None    # the adapter folder, when a LoRA/QLoRA run


@dataclass(frozen=True)
class ModelFiles:
    """Where the model behind a reference lies."""

    weights: Path              # what from_pretrained loads: the base model, or a full fine-tune's own folder
    tokenizer: Path
    adapter: Path | None       # the LoRA/QLoRA adapter that goes on the weights
    spec: Any = None           # the run's RunSpec; None when the reference is not a run folder


def model_files(ref: str) -> ModelFiles:
    """A run folder's model (its adapter on the base its spec names, resolved with the spec's hub and
    revision; a full fine-tune's adapter/ folder holds the whole model), or anything `model.id` accepts."""
    from wizard.model_source import resolve

    p = Path(ref)
    if not rf.is_run_dir(p):
        folder = resolve(ref)
        return ModelFiles(folder, folder, None)
    from wizard import spec as specmod

    spec = specmod.load(p / rf.SPEC)
    adapter = p / rf.ADAPTER
    if not adapter.is_dir():
        state = rf.read_json(p / rf.STATE) or {}
        raise UserError(f"{p}: the run has no adapter/ yet (status: {state.get('status', 'unknown')})",
                        hint=f"wait for it to finish, or resume it with `tune-wizard run {p / rf.SPEC} --resume`")
    if spec.method == "full":
        return ModelFiles(adapter, adapter, None, spec)
    return ModelFiles(resolve(spec.model.id, spec.model.hub, spec.model.revision), adapter, adapter, spec)


def inference_dtype():
    """bf16 on a GPU that has it, else fp32. Training's rule (hardware.pick_precision) but for its fp16, which
    without the Trainer's loss scaling can overflow in some models' activations."""
    import torch

    cuda = torch.cuda.is_available()
    name = pick_precision("auto", cuda, cuda and torch.cuda.is_bf16_supported())
    return torch_dtype("fp32" if name == "fp16" else name)


def load_for_inference(ref: str, dtype=None, merge: bool = False, gpu: bool = True) -> Loaded:
    """`ref`: a run folder (its adapter on its base model), or anything `model.id` accepts. `gpu=False` keeps
    the model on the CPU where a GPU exists (the 4-bit export moves one layer at a time there itself).

    A QLoRA adapter is applied to the base loaded in 16/32-bit, not 4-bit: the adapter was trained
    against dequantized weights, and this is the form that merges and exports cleanly.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from wizard.data.render import ensure_chat_template
    from wizard.model_source import load_tokenizer

    files = model_files(ref)
    if files.spec is not None:
        name, base_id, trust = Path(ref).name, files.spec.model.id, files.spec.model.trust_remote_code
    else:
        name = base_id = ref
        trust = False
    _check_quantized_folder(files.weights)
    tokenizer = load_tokenizer(files.tokenizer, trust)
    ensure_chat_template(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(files.weights, dtype=dtype or inference_dtype(),
                                                 trust_remote_code=trust)
    if files.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, files.adapter)
        if merge:
            model = model.merge_and_unload()
    if gpu and torch.cuda.is_available():
        model.to("cuda")
    model.eval()
    return Loaded(model, tokenizer, name, base_id, files.adapter)


def _check_quantized_folder(folder: Path) -> None:
    """A 4-bit folder from `export --awq/--gptq` (compressed-tensors) loads only where that package is installed;
    say so, instead of transformers' ImportError from deep inside from_pretrained."""
    import importlib.util
    import json

    try:
        method = json.loads((folder / "config.json").read_text())["quantization_config"]["quant_method"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if method == "compressed-tensors" and importlib.util.find_spec("compressed_tensors") is None:
        raise UserError(f"{folder}: a 4-bit compressed-tensors model, and the compressed-tensors package is not "
                        "installed", hint="pip install compressed-tensors   (or: pip install 'tune-wizard[quant]')")


def load_quietly(ref: str) -> Loaded:
    """The model for chat and serve; progress bars and warnings off, since stdout carries the answers."""
    import sys

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    print(f"loading {ref} ...", file=sys.stderr, flush=True)
    return load_for_inference(ref)
