"""The causal-LM loss without the whole logits tensor: the output head and the cross-entropy run on
LOSS_CHUNK_TOKENS tokens at a time, each chunk recomputed in the backward pass instead of kept.

Why: the logits are the largest single part of a step's peak. The usual loss upcasts [tokens x vocabulary]
to float32 and keeps it with its gradient: 12 bytes per token per vocabulary entry, 10.4 GiB for 6,144
tokens of a 152k-vocabulary model, more than the 4-bit weights of a 7B. Chunked, the loss holds one chunk
(~0.9 GiB at 512 tokens) whatever the pass's length, so batching by tokens can take several times more
tokens in the same memory. The cost is one more matrix product through the head in the backward pass
(~2% of a 7B step).

Not Liger Kernel's fused linear cross-entropy, which does the same in Triton: it works by replacing each model
family's forward in transformers (a release of one can break the other) and needs Triton, so there is no CPU
path and the CPU tests could not check it against the model's own loss. This is plain torch:
torch.utils.checkpoint around the head + cross-entropy of each chunk, the rest of the model untouched. Liger
may still be faster on a GPU; it was not measured here.

Used for the families in CHUNKED_LOSS_FAMILIES, whose forward is decoder -> lm_head (-> optional final
softcap) -> cross-entropy; others (MoE with a router loss, scaled logits) keep the model's own loss.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from wizard.estimate.memory import CHUNKED_LOSS_FAMILIES, LOSS_CHUNK_TOKENS

IGNORE_INDEX = -100


def supports(model) -> bool:
    """Whether this model's loss is decoder -> a plain lm_head -> cross-entropy (no adapter on the head)."""
    base = _causal_lm(model)
    return (getattr(base.config, "model_type", "") in CHUNKED_LOSS_FAMILIES
            and type(getattr(base, "lm_head", None)) is torch.nn.Linear)


def _causal_lm(model):
    """The transformers *ForCausalLM inside a PEFT wrapper (LoRA layers are injected in place, so calling its
    parts runs the adapters too)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _chunk_loss(hidden: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias, softcap: float):
    logits = torch.nn.functional.linear(hidden, weight, bias).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")


def causal_lm_loss(model, inputs: dict, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """The model's causal-LM loss on INPUTS (labels shifted as transformers does): the sum over label tokens
    divided by num_items_in_batch (the label count of the whole update, as the Trainer passes it), or by this
    batch's own label count when that is None (evaluation)."""
    base = _causal_lm(model)
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else base.model
    hidden = decoder(**inputs).last_hidden_state
    # The token at t predicts label t+1; the last position predicts nothing.
    shifted = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    hidden = hidden.reshape(-1, hidden.shape[-1])
    shifted = shifted.reshape(-1).to(hidden.device)
    head = base.lm_head
    softcap = float(getattr(base.config, "final_logit_softcapping", None) or 0.0)
    if hidden.shape[0] <= LOSS_CHUNK_TOKENS:
        # One chunk holds no more than the usual loss does: nothing to recompute.
        total = _chunk_loss(hidden, shifted, head.weight, head.bias, softcap)
    else:
        total = hidden.new_zeros((), dtype=torch.float32)
        grad = torch.is_grad_enabled()
        for start in range(0, hidden.shape[0], LOSS_CHUNK_TOKENS):
            h, y = hidden[start:start + LOSS_CHUNK_TOKENS], shifted[start:start + LOSS_CHUNK_TOKENS]
            part = (checkpoint(_chunk_loss, h, y, head.weight, head.bias, softcap, use_reentrant=False) if grad
                    else _chunk_loss(h, y, head.weight, head.bias, softcap))
            total = total + part
    if num_items_in_batch is None:
        num_items_in_batch = (shifted != IGNORE_INDEX).sum()
    if torch.is_tensor(num_items_in_batch):
        return total / num_items_in_batch.to(total.device).clamp(min=1)
    return total / max(int(num_items_in_batch), 1)
