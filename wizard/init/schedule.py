"""How many updates the chosen settings make of the chosen dataset, and the logging and saving intervals scaled
to it: 19 rows at 16 rows an update for 3 epochs are 3 updates, and "a log line every 5 steps" would print
none. The update size follows the engine's own rule (wizard.estimate.batching.plan, which also keeps a small
dataset at a few updates an epoch when batching by tokens), so the figures shown are the run's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from wizard.estimate.batching import Plan, plan

MIN_LOGS = 10   # log lines a run should print at least, so its loss curve shows a trend
MIN_SAVES = 2   # checkpoints at least: one to resume from midway, and the end


@dataclass(frozen=True)
class Schedule:
    rows: int                     # training rows (after the eval split)
    per_epoch: int                # updates (optimizer steps) an epoch
    total: int                    # updates of the whole run (max_steps when set)
    dataset_tokens: int | None    # tokens an epoch reads, where the row lengths are known
    plan: Plan                    # the batching, `auto`s resolved as the run will

    def describe(self) -> str:
        return f"~{self.per_epoch:,} update{'s' if self.per_epoch != 1 else ''} per epoch of {self.rows:,} rows, " \
               f"~{self.total:,} in all"


def updates(v: dict, rows: int | None, mean_tokens: float | None, fits=None) -> Schedule | None:
    """The schedule of values `v` (by question id: batching, batch_tokens, batch_size, grad_accum, max_length,
    epochs, max_steps, eval_split; `auto` where so) over `rows` rows of ~`mean_tokens` tokens; None when the
    dataset's size is unknown (a hub dataset without #N). `fits(tokens, checkpointing) -> (ok, GiB)`: the
    memory verdict on a forward pass (wizard.estimate.batching.plan's), None on a CPU."""
    from wizard.data.load import eval_count
    from wizard.init.questions import auto_or_whole

    if not rows:
        return None
    train = rows - eval_count(rows, float(v.get("eval_split") or 0))
    tokens = int(train * mean_tokens) if mean_tokens else None
    batching = v.get("batching") or "rows"
    if batching == "tokens" and tokens is None:
        return None  # an update's rows depend on their lengths
    p = plan(batching, auto_or_whole(v.get("batch_tokens", "auto")), auto_or_whole(v.get("grad_accum", "auto")),
             max_length=int(v.get("max_length") or 2048), dataset_tokens=tokens, fits=fits,
             ckpt_mode=str(v.get("gradient_checkpointing") or "auto"), batch_size=int(v.get("batch_size") or 1))
    if p.batching == "rows":
        per_epoch = math.ceil(train / (int(v.get("batch_size") or 1) * p.grad_accum))
    else:
        per_epoch = math.ceil(tokens / (p.batch_tokens * p.grad_accum))
    max_steps = int(v.get("max_steps") or -1)
    # As the Trainer counts: max_steps, when set, is the run's length, whatever the epochs.
    total = max_steps if max_steps > 0 else math.ceil(per_epoch * float(v.get("epochs") or 1))
    return Schedule(train, max(1, per_epoch), max(1, total), tokens, p)


def scaled(interval: int, total: int, at_least: int) -> int:
    """An interval (log or save every N updates) that happens `at_least` times in `total` updates; the
    recommended one where it already does."""
    if total // max(1, int(interval)) >= at_least:
        return int(interval)
    return max(1, total // at_least)
