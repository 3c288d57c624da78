"""Load a trained run (base + adapter) or a plain model for generation, and generate an answer.

Shared by chat, serve, export and the demo, so all of them see the same model the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from wizard import run_folder as rf
from wizard.errors import UserError


@dataclass
class Loaded:
    model: object
    tokenizer: object
    name: str                  # what to call it (run name or model id)
    base_id: str               # the base model id from the spec, or the model ref itself
    adapter: Path | None    # the adapter folder, when a LoRA/QLoRA run


def _run_spec(run_dir: Path):
    from wizard import spec as specmod

    return specmod.load(run_dir / rf.SPEC)


def load_for_inference(ref: str, dtype: torch.dtype | None = None, merge: bool = False) -> Loaded:
    """`ref`: a run folder (its adapter on its base model), or anything `model.id` accepts.

    A QLoRA adapter is applied to the base loaded in 16/32-bit, not 4-bit: the adapter was trained
    against dequantized weights, and this is the form that merges and exports cleanly.
    """
    from transformers import AutoModelForCausalLM

    from wizard.data.render import ensure_chat_template
    from wizard.model_source import load_tokenizer, resolve

    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    p = Path(ref)
    adapter = None
    if rf.is_run_dir(p):
        spec = _run_spec(p)
        adapter_path = p / rf.ADAPTER
        if not adapter_path.is_dir():
            state = rf.read_json(p / rf.STATE) or {}
            raise UserError(f"{p}: the run has no adapter/ yet (status: {state.get('status', 'unknown')})",
                            hint="wait for it to finish, or resume it with `tune-wizard run "
                                 f"{p / rf.SPEC} --resume`")
        name, base_id = p.name, spec.model.id
        if spec.method == "full":
            model_path, tok_path = adapter_path, adapter_path
        else:
            model_path = resolve(spec.model.id, spec.model.hub, spec.model.revision)
            tok_path, adapter = adapter_path, adapter_path
        trust = spec.model.trust_remote_code
    else:
        model_path = tok_path = resolve(ref)
        name = base_id = ref
        trust = False
    tokenizer = load_tokenizer(tok_path, trust)
    ensure_chat_template(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, trust_remote_code=trust)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        if merge:
            model = model.merge_and_unload()
    if torch.cuda.is_available():
        model.to("cuda")
    model.eval()
    return Loaded(model, tokenizer, name, base_id, adapter)


def end_of_turn_ids(loaded: Loaded) -> list[int]:
    """The tokenizer's eos plus the generation config's: Llama 3 ends a turn with <|eot_id|>, not its eos."""
    ids: list[int] = []
    for source in (loaded.tokenizer.eos_token_id, getattr(loaded.model.generation_config, "eos_token_id", None)):
        for i in source if isinstance(source, (list, tuple)) else [source]:
            if i is not None and i not in ids:
                ids.append(int(i))
    return ids


def prompt_ids(tokenizer, messages: list[dict]) -> torch.Tensor:
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    return enc["input_ids"]


@torch.inference_mode()
def generate(loaded: Loaded, messages: list[dict], max_new_tokens: int = 256, temperature: float = 0.0,
             top_p: float = 1.0, streamer=None) -> str:
    tok, model = loaded.tokenizer, loaded.model
    ids = prompt_ids(tok, messages).to(model.device)
    kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=end_of_turn_ids(loaded),
                  streamer=streamer)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
    return tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True).strip()


@torch.inference_mode()
def generate_batch(loaded: Loaded, conversations: list[list[dict]], max_new_tokens: int = 256) -> list[str]:
    """Greedy answers to several conversations in one batch: on a CPU decoding is bound by reading the
    weights, so one batched pass costs about what a single answer does."""
    tok, model = loaded.tokenizer, loaded.model
    prompts = [prompt_ids(tok, messages)[0] for messages in conversations]
    width = max(len(p) for p in prompts)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    # Left padding, so every row's last position is its generation prompt.
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = p
        mask[i, width - len(p):] = 1
    out = model.generate(ids.to(model.device), attention_mask=mask.to(model.device), max_new_tokens=max_new_tokens,
                         do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=pad,
                         eos_token_id=end_of_turn_ids(loaded))
    return [tok.decode(row[width:], skip_special_tokens=True).strip() for row in out]


def load_quietly(ref: str) -> Loaded:
    """The model for chat and serve; progress bars and warnings off, since stdout carries the answers."""
    import sys

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    print(f"loading {ref} ...", file=sys.stderr, flush=True)
    return load_for_inference(ref)
