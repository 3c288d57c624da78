"""How many tokens go into a forward pass and an update, for `batching: tokens` (and grad_accum `auto`).

One rule, used by the engine when a run starts, by the wizard's recommended settings and by
`tune-wizard estimate`:

- the budget (tokens per forward pass) is the one of BUDGETS the memory estimate fits in the GPU's free
  memory, with gradient checkpointing off or on, that gives the most tokens per second by the step-time model
  below; on a CPU one max_length of tokens (a CPU has no fixed per-step cost to spread, and it bounds memory
  like one full row per step does);
- an update holds about UPDATE_TOKENS tokens (grad_accum = UPDATE_TOKENS / budget, at least 1), fewer on a
  small dataset so that an epoch still has MIN_UPDATES_PER_EPOCH updates. With several processes (GPUs) an update
  is every process's passes together, so each accumulates 1/processes of them: the same update on 1 or N GPUs.

Step-time model: a step costs a fixed part (kernel launches, the 4-bit weights dequantized once per pass) plus
a part per token, which gradient checkpointing makes a third dearer (it recomputes the forward). Measured on
an H200 for a Qwen2.5-7B shape (bench/results/packed_attention_NVIDIA_H200.json, qlora_vs_hf_recipe_...):
2048 tokens in 0.198 s and 8192 in 0.55 s, i.e. ~0.08 s fixed + 0.059 s per 1,000 tokens: the fixed part is
worth ~1,400 tokens. Past 16,384 tokens the gain is under 5% and an update would hold more than UPDATE_TOKENS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Candidate budgets, largest first. Multiples of 1,024 so few distinct shapes reach the GPU.
BUDGETS = (16384, 12288, 8192, 6144, 4096, 3072, 2048, 1024)
STEP_OVERHEAD_TOKENS = 1400
CHECKPOINTING_COST = 4 / 3
# About 48 rows of typical instruction data (mean ~340 tokens), or 8 rows of 2048: the order of the total batch
# LoRA SFT recipes use.
UPDATE_TOKENS = 16384
MIN_UPDATES_PER_EPOCH = 20
ROWS_PER_UPDATE = 16    # grad_accum auto with batching rows: the init script's total batch of 16 rows


def relative_speed(tokens: int, checkpointing: bool) -> float:
    """Tokens per second of a step of `tokens`, relative to a step with no fixed cost and no recompute."""
    return tokens / (STEP_OVERHEAD_TOKENS + tokens * (CHECKPOINTING_COST if checkpointing else 1.0))


@dataclass
class Plan:
    batching: str                   # tokens | rows
    batch_tokens: int | None        # tokens per forward pass (batching tokens)
    grad_accum: int
    checkpointing: bool | None      # what the budget was chosen with (None: not decided here)
    why: str
    processes: int = 1              # processes (GPUs) whose passes make one update together

    def describe(self, mean_row_tokens: float | None = None) -> str:
        n = self.processes
        each = f" on each of {n} processes" if n > 1 else ""
        if self.batching == "rows":
            return f"{self.grad_accum} forward passes per update{each}"
        rows = f", ~{self.batch_tokens / mean_row_tokens:.0f} rows" if mean_row_tokens else ""
        return (f"~{self.batch_tokens:,} tokens per forward pass{rows}; {self.grad_accum} per update{each} "
                f"(~{self.batch_tokens * self.grad_accum * n:,} tokens)")


def pick_budget(fits, max_length: int, ckpt_mode: str = "auto", cap: int = BUDGETS[0]) -> tuple[int, bool, str]:
    """(budget, checkpointing, why) from `fits(tokens, checkpointing) -> (ok, GiB)`, the memory estimate's
    verdict for one forward pass of that many tokens, among BUDGETS up to `cap` (never below max_length).
    ckpt_mode `on`/`off` fixes checkpointing."""
    modes = [False, True] if ckpt_mode == "auto" else [ckpt_mode == "on"]
    candidates = sorted({min(max(b, max_length), max(cap, max_length)) for b in BUDGETS}, reverse=True)
    best = None
    for ckpt in modes:
        for tokens in candidates:
            ok, gb = fits(tokens, ckpt)
            if ok:
                speed = relative_speed(tokens, ckpt)
                if best is None or speed > best[0]:
                    best = (speed, tokens, ckpt, gb)
                break
    if best is None:
        ckpt = modes[-1]
        return max_length, ckpt, (f"even {max_length} tokens (one full row) may not fit; "
                                  f"checkpointing {'on' if ckpt else 'off'}")
    _, tokens, ckpt, gb = best
    return tokens, ckpt, (f"{tokens:,} tokens per pass with checkpointing {'on' if ckpt else 'off'} is the fastest "
                          f"that fits ({gb:.1f} GiB)")


def plan(batching: str, batch_tokens: int | str, grad_accum: int | str, *, max_length: int, fits=None,
         ckpt_mode: str = "auto", dataset_tokens: int | None = None, batch_size: int = 1, processes: int = 1) -> Plan:
    """Resolve the spec's `auto`s. fits(tokens, checkpointing) -> (ok, GiB) is the memory estimate's verdict on a
    GPU (None on a CPU); dataset_tokens, when known, keeps a small dataset at MIN_UPDATES_PER_EPOCH updates an
    epoch; processes: how many processes' passes make an update."""
    n = max(1, processes)
    if batching == "rows":
        accum = max(1, round(ROWS_PER_UPDATE / (batch_size * n))) if grad_accum == "auto" else int(grad_accum)
        return Plan("rows", None, accum, None, "batching rows", n)
    update = UPDATE_TOKENS
    if dataset_tokens:
        update = min(update, max(max_length, math.ceil(dataset_tokens / MIN_UPDATES_PER_EPOCH)))
    ckpt = None
    if batch_tokens != "auto":
        tokens, why = int(batch_tokens), "set in the spec"
    elif fits is not None:
        tokens, ckpt, why = pick_budget(fits, max_length, ckpt_mode, cap=_round_up(update, 1024))
    else:
        tokens, why = max_length, ("one max_length per pass: a CPU gains nothing from bigger ones, and with the GPU's "
                                   "memory or the model's shape unknown it is the safe size")
    if grad_accum == "auto":
        accum = max(1, round(update / (tokens * n)))
    else:
        accum = int(grad_accum)
    return Plan("tokens", tokens, accum, ckpt, why, n)


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step
