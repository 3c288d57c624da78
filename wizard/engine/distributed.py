"""One process of a run on several GPUs (or CPU processes): who it is, and what the processes must agree on.

torchrun (torch.distributed.run) starts the processes and sets RANK, LOCAL_RANK and WORLD_SIZE; the HF Trainer,
through accelerate, wraps the model (DDP or FSDP) and shards the batches. What is left for the engine:

- one writer: rank 0 owns the run folder (spec, state, metrics, the lock, checkpoint markers, the adapter); the
  others log warnings to train.log tagged with their rank and write nothing else;
- the run folder's path, which rank 0 decides (a new folder's time-stamped name) and broadcasts;
- a stop at the same step on every rank: a signal reaches the processes at slightly different times, and a rank
  that stopped while another ran one more step would leave that one waiting in its gradient all-reduce;
- tokens per second of the whole run (SFT counts its tokens on each process's host);
- the error of a rank that failed, kept in the run folder so that the launcher can name that rank and error,
  even when the ranks that waited for it only saw their connection close.

These collectives run on a CPU (gloo) group of their own: on GPUs they never wait for the GPU's queue.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("wizard.run")

RUN_DIR_ENV = "TUNE_WIZARD_RUN_DIR"   # set by the launcher: the run folder it made (or the one resumed)
FAILED_PREFIX = ".rank-failed-"       # + rank: a rank's failure, for the launcher (rank_failures)


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def writer(self) -> bool:
        """Whether this process writes the run folder: rank 0 only."""
        return self.rank == 0


def world() -> World:
    """This process's place, from the variables torchrun sets (a single process without them)."""
    def num(name: str, default: int) -> int:
        try:
            return int(os.environ.get(name, default))
        except ValueError:
            return default

    return World(num("RANK", 0), num("LOCAL_RANK", 0), num("WORLD_SIZE", 1))


_group = None  # the gloo group of the engine's own small collectives


def init(w: World) -> None:
    """Join the process group torchrun describes (nccl on GPUs, gloo on CPUs), before anything is loaded: the
    run folder's path is broadcast, and a rank that cannot join fails here, not in the middle of a step. The
    Trainer (accelerate) finds the group initialised and uses it."""
    global _group
    if not w.distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(w.local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", w.local_rank))
        _group = dist.new_group(backend="gloo")
    else:
        dist.init_process_group("gloo")
        _group = None  # the default group is already gloo


def broadcast(value, w: World):
    """VALUE of rank 0, on every rank (any picklable object)."""
    if not w.distributed:
        return value
    import torch.distributed as dist

    box = [value if w.writer else None]
    dist.broadcast_object_list(box, src=0, group=_group)
    return box[0]


def agree_stop(requested: int | None, w: World) -> int | None:
    """The signal any rank was asked to stop by (the largest number), or None when none was: every rank calls
    this at the same step boundary and all take the same decision."""
    if not w.distributed:
        return requested
    import torch
    import torch.distributed as dist

    flag = torch.tensor([requested or 0], dtype=torch.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=_group)
    return int(flag.item()) or None


def total(count: int, w: World) -> int:
    """COUNT summed over the ranks (each calls it at the same point)."""
    if not w.distributed:
        return count
    import torch
    import torch.distributed as dist

    t = torch.tensor([count], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=_group)
    return int(t.item())


def barrier(w: World) -> None:
    if w.distributed:
        import torch.distributed as dist

        dist.barrier(group=_group)


def shutdown() -> None:
    """Leave the process group (at the end of a run; a process that raised leaves it by exiting)."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# -- a rank's failure, for the launcher ---------------------------------------------------------------------

def record_failure(run_dir: Path | None, w: World, reason: str) -> None:
    """Keep why this rank failed (ranks other than 0 write nothing else; rank 0's reason is also in state.json).
    The launcher reads the first of these to name the rank that brought the run down."""
    if run_dir is None or not w.distributed:
        return
    try:
        path = Path(run_dir) / f"{FAILED_PREFIX}{w.rank}"
        path.write_text(json.dumps({"rank": w.rank, "time": time.time(), "reason": reason}), encoding="utf-8")
    except OSError as exc:  # the failure itself must still reach torchrun
        log.warning("rank %d: could not record its failure: %s", w.rank, exc)


def rank_failures(run_dir: Path) -> list[dict]:
    """The ranks' recorded failures, the first one first."""
    out = []
    for path in Path(run_dir).glob(f"{FAILED_PREFIX}*"):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda r: r.get("time", 0))


def clear_failures(run_dir: Path) -> None:
    for path in Path(run_dir).glob(f"{FAILED_PREFIX}*"):
        path.unlink(missing_ok=True)
