"""`tune-wizard run SPEC --gpus N`: a run on several GPUs (or machines), its processes started by torchrun.

torchrun (torch.distributed.run, PyTorch's own launcher) starts one process per GPU, gives each its RANK,
LOCAL_RANK and WORLD_SIZE, and, when one fails, stops the others and reports the first error. This module only
prepares the call and reads the outcome:

1. everything `run` checks is checked once, here, before any process starts (a spec or data error is exit 2 in
   seconds, the model is downloaded once, not by N processes at the same time);
2. a new run's folder is made here and handed to the processes (TUNE_WIZARD_RUN_DIR); a resumed one is named
   to them; rank 0 writes it, the others log their warnings to its train.log;
3. torchrun runs in this process (torch.distributed.run's own entry point, as the `torchrun` command calls it) and
   starts each training process in a session of its own, so a Ctrl-C in the terminal reaches them once, through
   torchrun, as do SIGTERM and SIGHUP sent to this process: they stop after the same step with a checkpoint
   (wizard.engine.stopping, agreed by wizard.engine.distributed);
4. afterwards the run's state decides the exit status (0 finished, 128 + signal interrupted, 1 failed), and when a
   process failed, the run's state names the first rank that failed and its error: the others only saw their
   connection to it close.

A plain `torchrun --nproc-per-node N -m wizard run SPEC` works too: rank 0 then makes the folder itself.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from wizard import run_folder as rf
from wizard.engine import distributed


@dataclass
class Nodes:
    """The machines of a run (torchrun's rendezvous); one machine by default."""

    count: int = 1
    rank: int = 0
    endpoint: str | None = None     # HOST:PORT of the c10d rendezvous (on node 0), several machines only
    run_id: str | None = None       # the same on every machine of one run

    def torchrun_args(self, default_id: str) -> list[str]:
        if self.count <= 1:
            return ["--standalone"]  # a free port on this machine: runs side by side never collide
        return ["--nnodes", str(self.count), "--node-rank", str(self.rank), "--rdzv-backend", "c10d",
                "--rdzv-endpoint", str(self.endpoint), "--rdzv-id", self.run_id or default_id]


def inside_torchrun() -> bool:
    """Whether this process is one that torchrun started (it then trains; it never launches)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or distributed.world().distributed


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def start(spec_path: str, overrides: list[str], *, resume: str | None = None, plain: bool = False,
          gpus: int | str | None = None, gpu_memory: float | None = None, nodes: Nodes | None = None) -> int:
    """`tune-wizard run` and the wizard's "Start training now?": train the spec in this process, or, when it asks
    for several processes (GPUS, the spec's distributed.gpus, several NODES), launch them; the exit status."""
    from wizard import spec as specmod
    from wizard.engine.runner import train_file
    from wizard.errors import SpecError
    from wizard.estimate.strategy import processes

    nodes = nodes or Nodes()
    if inside_torchrun():  # one of the processes torchrun started: it trains
        train_file(spec_path, overrides, resume, plain)
        return 0
    overrides = [*overrides, *([f"distributed.gpus={gpus}"] if gpus is not None else [])]
    spec = specmod.load(spec_path, overrides)
    wanted = spec.distributed.gpus
    n = 1 if wanted == 1 else processes(wanted, gpu_count())
    if n == 1 and nodes.count == 1:
        train_file(spec_path, overrides, resume, plain)
        return 0
    if nodes.count > 1 and not nodes.endpoint:
        raise SpecError(f"--nnodes {nodes.count}: the machines need a place to meet",
                        hint="add --rdzv-endpoint HOST:PORT (node 0's address and a free port), the same on each")
    return launch(spec, spec_path, overrides, n, resume=resume, plain=plain, gpu_memory=gpu_memory, nodes=nodes)


def torchrun_argv(n: int, nodes: Nodes, spec_path: str, overrides: list[str], *, resume: str | None, plain: bool,
                  gpu_memory: float | None, run_name: str) -> list[str]:
    """torchrun's command line for the run (what `torchrun ARGV` would be given)."""
    argv = ["--nproc-per-node", str(n), "--max-restarts", "0", *nodes.torchrun_args(run_name),
            "--module", "wizard", "run", spec_path]
    for o in overrides:
        argv += ["--set", o]
    if resume:
        argv += ["--resume", resume]
    if plain:
        argv.append("--plain")
    if gpu_memory is not None:
        argv += ["--gpu-memory", str(gpu_memory)]
    return argv


def launch(spec, spec_path: str, overrides: list[str], n: int, *, resume: str | None = None, plain: bool = False,
           gpu_memory: float | None = None, nodes: Nodes | None = None) -> int:
    """Run SPEC on N processes of this machine (and NODES' other machines); the exit status."""
    from wizard.engine.runner import check_before_launch

    nodes = nodes or Nodes()
    run_dir, checkpoint = check_before_launch(spec, resume, n * nodes.count)
    made = None
    if checkpoint is not None:
        resume = str(checkpoint)
    elif nodes.rank == 0:
        run_dir = made = rf.new_run_dir(spec.output_dir, spec.name)
        os.environ[distributed.RUN_DIR_ENV] = str(run_dir)  # the processes inherit it
    argv = torchrun_argv(n, nodes, spec_path, [*overrides, f"distributed.gpus={n}"], resume=resume, plain=plain,
                         gpu_memory=gpu_memory, run_name=spec.name)
    where = "CPU processes (gloo)" if gpu_count() == 0 else "GPUs"
    print(f"starting {n} {where}{f' on each of {nodes.count} machines' if nodes.count > 1 else ''} through "
          f"torchrun{f': {run_dir}' if run_dir else ''}", file=sys.stderr, flush=True)
    failures, code = _torchrun(argv)
    if run_dir is None:  # another machine's rank 0 writes the run
        return code
    return outcome(Path(run_dir), code, failures, made=made is not None)


def _torchrun(argv: list[str]) -> tuple[dict, int]:
    """torchrun itself (torch.distributed.run), in this process: ({rank: why it ended} of the processes that failed,
    exit status). A signal to this process (a Ctrl-C) is torchrun's to pass on: the processes run in sessions of
    their own, so the terminal's signal reaches them once, through it."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun's own warnings (each signal it passes on, each process it stops): the run's state says it better.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    try:
        run(parse_args(argv))
    except ChildFailedError as exc:
        return {rank: _ended(f) for rank, f in exc.failures.items()}, 1
    except SignalException as exc:
        return {}, 128 + int(exc.sigval)
    return {}, 0


def _ended(failure) -> str:
    """How a process torchrun saw fail ended: its exit status, or the signal that killed it."""
    code = failure.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def outcome(run_dir: Path, code: int, failed: dict | None = None, made: bool = False) -> int:
    """The exit status the run's state gives, after torchrun returned CODE with FAILED ({rank: how it ended}).
    When a process failed, the state is corrected first where it does not tell it: rank 0 saw only a closed
    connection, or was stopped by torchrun before it could write its end. The error a rank recorded
    (distributed.record_failure) names it; a rank that could record nothing (killed) is named by how it ended."""
    failed = failed or {}
    state = rf.read_state(run_dir)
    recorded = distributed.rank_failures(run_dir)
    first = _first_failure(recorded, failed)
    if state is None:
        print(f"error: {first or f'the processes ended (exit status {code}) before the run started'}",
              file=sys.stderr)
        if made:  # a folder made for this run that no process began to write: leave nothing behind
            shutil.rmtree(run_dir, ignore_errors=True)
        return code or 1
    status = state.get("status")
    if status == "finished":
        return 0
    if first and status != "interrupted":
        if not str(state.get("message", "")).startswith(first):  # rank 0 could not tell (killed, or first to fail)
            message = f"{first} (torchrun stopped the other processes)"
            ckpts = rf.complete_checkpoints(run_dir)
            if ckpts:
                message += f"; --resume continues from {ckpts[-1].name}"
            _rewrite_end(run_dir, state, status="failed", message=message)
            print(f"error: {message}", file=sys.stderr)
        return 1
    if status == "interrupted":
        name = state.get("signal")
        return 128 + int(getattr(signal.Signals, name, signal.SIGINT)) if name else 130
    return code or 1


def _first_failure(recorded: list[dict], failed: dict) -> str | None:
    """"rank R failed: <error>" for the process that brought the run down: the first error a rank recorded, unless
    a process torchrun saw fail recorded none (killed: it could not), which then came first."""
    silent = sorted(rank for rank in failed if rank not in {r.get("rank") for r in recorded})
    if silent:
        return f"rank {silent[0]} {failed[silent[0]]} without an error of its own (killed, or out of host memory)"
    if recorded:
        return f"rank {recorded[0].get('rank')} failed: {recorded[0].get('reason')}"
    return None


def _rewrite_end(run_dir: Path, state: dict, **changes) -> None:
    """Correct how the run ended, holding its lock (no process writes it any more once torchrun returned)."""
    lock = rf.take_lock(run_dir)
    if lock is None:
        return
    try:
        state = {**(rf.read_json(run_dir / rf.STATE) or state), **changes}
        state.setdefault("ended_at", time.time())
        rf.write_json_atomic(run_dir / rf.STATE, state)
    finally:
        lock.release()
