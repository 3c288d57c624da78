"""Answers from a loaded model: the one place generation is set up, for chat, serve, the identity demo and
dpo_eval. The prompt is the tokenizer's chat template; an answer stops at any end-of-turn token (Llama 3 ends a
turn with <|eot_id|>, not its eos); temperature 0 is greedy. `answer` also stops on Ctrl-C, honours stop
strings and reports token counts and why it ended, as the server needs.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from wizard.inference.loading import Loaded


@dataclass
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn or a stop string), "length" (max tokens) or "cancelled"


class _Cancelled:
    """A stopping criterion that ends generation once `event` is set (Ctrl-C, a client that went away)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


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


def generation_kwargs(loaded: Loaded, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0) -> dict:
    """model.generate's settings: stop at any end of turn; greedy at temperature 0, else sampled."""
    tok = loaded.tokenizer
    eos = end_of_turn_ids(loaded)
    kwargs: dict = dict(max_new_tokens=max_new_tokens, eos_token_id=eos,
                        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else None))
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=None)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


def count_prompt_tokens(loaded: Loaded, messages: list[dict]) -> int:
    return int(prompt_ids(loaded.tokenizer, messages).shape[1])


def cut_at_stop(text: str, stop: Sequence[str]) -> int | None:
    """Index of the earliest stop string in `text`, or None."""
    found = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return min(found) if found else None


@torch.inference_mode()
def answer(loaded: Loaded, messages: list[dict], *, max_new_tokens: int = 256, temperature: float = 0.0,
           top_p: float = 1.0, stop: Sequence[str] = (), streamer=None, cancel: threading.Event | None = None,
           seed: int | None = None) -> Answer:
    """Greedy when temperature is 0 (the same answer every time), else sampled with temperature and top_p."""
    from transformers import StoppingCriteriaList

    tok, model = loaded.tokenizer, loaded.model
    ids = prompt_ids(tok, messages).to(model.device)
    kwargs = generation_kwargs(loaded, max_new_tokens, temperature, top_p)
    eos = kwargs["eos_token_id"]
    kwargs.update(streamer=streamer,
                  stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)] if cancel is not None else []))
    if stop:
        kwargs.update(stop_strings=list(stop), tokenizer=tok)
    if temperature > 0 and seed is not None:
        torch.manual_seed(seed)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
    new = out[0][ids.shape[1]:].tolist()
    text = tok.decode(new, skip_special_tokens=True)
    cut = cut_at_stop(text, stop) if stop else None
    if cut is not None:
        text, reason = text[:cut], "stop"
    elif new and new[-1] in eos:
        reason = "stop"
    elif cancel is not None and cancel.is_set():
        reason = "cancelled"
    elif len(new) >= max_new_tokens:
        reason = "length"
    else:
        reason = "stop"
    return Answer(text.strip(), int(ids.shape[1]), len(new), reason)


@torch.inference_mode()
def generate_batch(loaded: Loaded, conversations: list[list[dict]], max_new_tokens: int = 256) -> list[str]:
    """Greedy answers to several conversations in one batch: on a CPU decoding is bound by reading the
    weights, so one batched pass costs about what a single answer does."""
    tok, model = loaded.tokenizer, loaded.model
    kwargs = generation_kwargs(loaded, max_new_tokens)
    prompts = [prompt_ids(tok, messages)[0] for messages in conversations]
    width = max(len(p) for p in prompts)
    # Left padding, so every row's last position is its generation prompt.
    ids = torch.full((len(prompts), width), kwargs["pad_token_id"], dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = p
        mask[i, width - len(p):] = 1
    out = model.generate(ids.to(model.device), attention_mask=mask.to(model.device), **kwargs)
    return [tok.decode(row[width:], skip_special_tokens=True).strip() for row in out]
