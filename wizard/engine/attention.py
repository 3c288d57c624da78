"""Which attention kernel a run uses, and torch's varlen flash attention as a transformers attention function.

With batching tokens a forward pass is one sequence of whole rows end to end. The rows must not attend to
each other. Measured on an H200 (bench/results/packed_attention_NVIDIA_H200.json, 7B shape, 8,192-token
passes): sdpa with the dense block-diagonal mask transformers builds from position_ids 9,823 tokens/s;
flex_attention 14,777 (compiled: a new compile for each new length, and lengths vary here); torch's varlen
flash attention, which takes the row boundaries (cu_seq_lens) and no mask at all, 14,870. So `auto` takes
varlen on a GPU whose torch has it (torch.nn.attention.varlen, torch >= 2.10, 16-bit compute), and sdpa
otherwise, which is exact everywhere (the CPU path): transformers finds the row boundaries from the
position_ids and masks across them.

No flash-attn package: it is built from source against one torch and CUDA, which a pip install from the
registry cannot promise; varlen_attn ships inside torch.
"""
from __future__ import annotations

import inspect

VARLEN = "tw_varlen"  # the name registered with transformers' AttentionInterface


def varlen_available() -> bool:
    try:
        import torch
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def unsupported(config: dict, max_length: int) -> str | None:
    """What in a model's config.json the varlen kernel here does not do, or None. It has no soft-capping of the
    attention scores (Gemma 2) and no sliding window; a window no shorter than the longest row never applies."""
    if config.get("attn_logit_softcapping"):
        return "the model soft-caps its attention scores"
    window = config.get("sliding_window")
    if window and config.get("use_sliding_window", True) and int(window) < max_length:
        return f"the model's sliding window ({window} tokens) is shorter than data.max_length ({max_length})"
    return None


def choose(requested: str, batching: str, precision: str, config: dict | None = None,
           max_length: int = 0) -> tuple[str, str]:
    """(transformers attn_implementation, why) for this run on this machine; config: the model's config.json."""
    if requested in ("sdpa", "eager"):
        return requested, "set in the spec"
    one_sequence = batching == "tokens"
    problem = unsupported(config or {}, max_length)
    if requested == "varlen":
        if not one_sequence:
            raise ValueError("train.attention: varlen needs train.batching: tokens (one unpadded sequence per "
                             "forward pass); use sdpa, or batching tokens")
        if not varlen_available():
            raise ValueError("train.attention: varlen needs a CUDA GPU and torch >= 2.10 "
                             "(torch.nn.attention.varlen); use auto or sdpa")
        if problem:
            raise ValueError(f"train.attention: varlen would be wrong here: {problem}; use auto or sdpa")
        register()
        return VARLEN, "set in the spec"
    if one_sequence and precision in ("bf16", "fp16") and varlen_available() and not problem:
        register()
        return VARLEN, "auto: rows end to end, torch's varlen flash attention (no mask)"
    if problem and one_sequence:
        return "sdpa", f"auto: sdpa with the row boundaries from position_ids ({problem})"
    why = "auto: rows padded, sdpa with the padding mask" if not one_sequence else (
        "auto: sdpa with the row boundaries from position_ids (no varlen kernel on this machine)")
    return "sdpa", why


_registered = False


def register() -> None:
    """Register VARLEN with transformers (once per process)."""
    global _registered
    if _registered:
        return
    from torch.nn.attention.varlen import varlen_attn
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    params = inspect.signature(varlen_attn).parameters

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, cu_seq_lens_q=None,
                  cu_seq_lens_k=None, max_length_q=None, max_length_k=None, **_):
        # transformers hands (batch=1, heads, tokens, dim); varlen_attn takes (tokens, heads, dim).
        if query.shape[0] != 1:
            raise ValueError("varlen attention takes one packed sequence per forward pass")
        q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
        if cu_seq_lens_q is None:  # no boundaries given (e.g. a plain forward): the whole input is one sequence
            import torch

            n = q.shape[0]
            cu_seq_lens_q = cu_seq_lens_k = torch.tensor([0, n], dtype=torch.int32, device=q.device)
            max_length_q = max_length_k = n
        kw = {"scale": scaling}
        if "enable_gqa" in params:
            kw["enable_gqa"] = k.shape[1] != q.shape[1]
        elif k.shape[1] != q.shape[1]:  # torch 2.10/2.11: no grouped-query support, repeat the KV heads
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if "is_causal" in params:
            kw["is_causal"] = True
        else:
            kw["window_size"] = (-1, 0)
        out = varlen_attn(q, k, v, cu_seq_lens_q, cu_seq_lens_k, max_length_q, max_length_k, **kw)
        return out.unsqueeze(0), None

    AttentionInterface.register(VARLEN, attention)
    # Like flash attention, it takes no 4D mask: transformers hands it the 2D padding mask or none.
    AttentionMaskInterface.register(VARLEN, flash_attention_mask)
    _registered = True
