"""One answer from a loaded model, with what chat and serve need beyond wizard.inference.loading.generate.

infer.generate returns text only. The chat has to stop an answer on Ctrl-C, and the server has to report
token counts, honour stop strings and say why the answer ended, so this calls `model.generate` itself,
building the prompt the same way (infer.prompt_ids, the tokenizer's chat template).
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from wizard.inference.loading import Loaded, end_of_turn_ids, prompt_ids


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
    eos = end_of_turn_ids(loaded)
    criteria = StoppingCriteriaList([_Cancelled(cancel)] if cancel is not None else [])
    kwargs: dict = dict(max_new_tokens=max_new_tokens, eos_token_id=eos, streamer=streamer,
                        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos[0],
                        stopping_criteria=criteria)
    if stop:
        kwargs.update(stop_strings=list(stop), tokenizer=tok)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=None)
        if seed is not None:
            torch.manual_seed(seed)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
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
