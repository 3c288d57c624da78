"""One run's lifecycle in one owner: its state.json, train.log handler, GPU sampler and reporter.

    with RunLifecycle(run_dir, {"name": ..., "model": ...}, reporter_factory=make_reporter) as run:
        run.event("loading ...")          # train.log + the reporter's log tail
        run.update(step=3)                # state.json, rewritten atomically
        run.finish(adapter_dir=..., message=...)   # what the finished state adds

How a run ends is decided here and written once, on leaving the block: a normal end is `finished`, a
KeyboardInterrupt (Ctrl-C, SIGINT) `interrupted`, any other exception `failed` with a one-line reason (and the
traceback in train.log). Then the reporter hears the end and is closed, the sampler stops and train.log is
released, whatever went wrong before.
"""
from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from wizard import run_folder as rf
from wizard.monitor.nvml import start_sampler
from wizard.monitor.reporting import PlainReporter, Reporter

# The loggers whose records go to train.log.
LOGGERS = ("wizard", "transformers", "peft")
OOM_HINT = ("out of GPU memory: see `tune-wizard estimate` and lower data.max_length or train.batch_size, or use "
            "method qlora / gradient_checkpointing on")

log = logging.getLogger("wizard.run")


# errno values of a write the disk refused: full, over quota, over the file size limit
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def failure_reason(exc: BaseException, oom_advice: Callable[[], str | None] | None = None,
                   writing: Path | None = None) -> str:
    """One line for state.json and the summary: the exception's type and first line, plus the fix for running out
    of GPU memory (with the spec's own estimate when `oom_advice` gives it) or disk space (naming the file, or
    WRITING: what the run was saving when it failed)."""
    refused = _disk_refused(exc)
    if refused:
        where = getattr(exc, "filename", None) or writing or "the run folder"
        return (f"{type(exc).__name__}: {refused} writing {where} — free space on that disk (or set output_dir "
                "on a bigger one), then --resume continues from the newest complete checkpoint")
    first = str(exc).splitlines()[0][:300] if str(exc) else ""
    text = f"{type(exc).__name__}: {first}".rstrip(": ")
    if _is_out_of_memory(exc):
        advice = None
        if oom_advice is not None:
            try:
                advice = oom_advice()
            except Exception as problem:  # noqa: BLE001 - advice must never hide the failure itself
                log.warning("no estimate for the out-of-memory advice: %s", problem)
        text += f" — {advice or OOM_HINT}"
    return text


def _disk_refused(exc: BaseException) -> str | None:
    """The OS's words when EXC is a write the disk refused (safetensors' Rust writer reports it as text)."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return exc.strerror or os.strerror(exc.errno)
    text = str(exc)
    return next((os.strerror(code) for code in DISK_FULL
                 if os.strerror(code) in text or f"os error {code})" in text), None)


def _is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")  # a run that never imported torch cannot have run out of GPU memory
    if torch is None:
        return False
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    # MPS reports it as a plain RuntimeError.
    return isinstance(exc, oom) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def attach_log(run_dir: Path, rank: int | None = None) -> logging.Handler:
    """train.log for this process's loggers. RANK: a process of a run on several GPUs other than rank 0, whose
    warnings and errors go to the same file (appends of whole lines), tagged with its rank."""
    handler = logging.FileHandler(Path(run_dir) / rf.LOG, encoding="utf-8")
    tag = "" if rank is None else f"[rank {rank}] "
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s: {tag}%(message)s"))
    if rank is not None:
        handler.setLevel(logging.WARNING)
    for name in LOGGERS:
        logging.getLogger(name).addHandler(handler)
    # Only our own logger goes to INFO: raising transformers' level would also print its INFO lines
    # on the terminal through its own handler. Its warnings still reach train.log.
    logging.getLogger("wizard").setLevel(logging.INFO)
    # The reporter already shows our events; without this Python's last-resort handler prints warnings twice.
    logging.getLogger("wizard").propagate = False
    return handler


def detach_log(handler: logging.Handler) -> None:
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)
    handler.close()


class RunLifecycle:
    """Owns a run folder while it trains (see the module docstring).

    run_dir: the run folder (it exists). identity: what state.json says about the run from the start (name,
    model, task, method, ...). reporter: the caller's reporter, used as is; otherwise reporter_factory(run_dir,
    sampler=the run's sampler) makes one (e.g. make_reporter, so the dashboard draws this run's sampler), and
    without either a PlainReporter. start_sampler: how the one sampler is started (the NVML one by default).
    world: the process's place in a run on several GPUs (wizard.engine.distributed.World): only rank 0 writes
    state.json, samples the GPUs and reports; the others log their warnings to train.log, tagged, and record
    their failure for the launcher.
    """

    def __init__(self, run_dir: str | Path, identity: dict | None = None, *, reporter: Reporter | None = None,
                 reporter_factory: Callable[..., Reporter] | None = None,
                 start_sampler: Callable[[Path], object] = start_sampler,
                 oom_advice: Callable[[], str | None] | None = None, world=None):
        from wizard.engine.distributed import World

        self.world = world or World()
        self.run_dir = Path(run_dir)
        self._oom_advice = oom_advice
        self.writing: Path | None = None  # what the run is saving now (a checkpoint, the adapter), for a failure
        self.state: dict = dict(identity or {})
        self.reporter: Reporter | None = reporter
        self.sampler = None
        self.handler: logging.Handler | None = None
        self._factory = reporter_factory
        self._start_sampler = start_sampler
        self._final: dict = {}
        self._ended = False

    # -- the block ---------------------------------------------------------------------------------------
    def __enter__(self) -> RunLifecycle:
        if not self.world.writer:
            self.handler = attach_log(self.run_dir, rank=self.world.rank)
            self.reporter = Reporter()  # silent: rank 0 shows the run
            return self
        try:
            self.handler = attach_log(self.run_dir)
            self.update(status="starting", run_dir=str(self.run_dir), started_at=time.time(), pid=os.getpid())
            # gpu.jsonl is written whatever the reporter, so `tune-wizard watch` works for nohup runs too.
            self.sampler = self._start_sampler(self.run_dir)
            if self.reporter is None:
                self.reporter = (self._factory(self.run_dir, sampler=self.sampler) if self._factory
                                 else PlainReporter())
        except BaseException as exc:
            self._end(exc)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._end(exc)
        return False  # the caller (the CLI) still sees the exception: exit code 130, 2 or 1

    # -- during the run ----------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        """Merge CHANGES into state.json (atomically: a watcher never reads half a file)."""
        self.state.update(changes, updated_at=time.time())
        if not self.world.writer:
            return
        rf.write_json_atomic(self.run_dir / rf.STATE, self.state)

    def event(self, text: str, level: str = "info") -> None:
        """A line in train.log and the reporter's log tail."""
        getattr(log, "warning" if level == "warning" else "error" if level == "error" else "info")(text)
        if self.reporter is not None:
            self.reporter.on_event(text, level)

    def finish(self, **final) -> None:
        """What the finished state adds (adapter, losses, message); written when the block ends normally."""
        self._final = final

    # -- the end, in one place ---------------------------------------------------------------------------
    def _ending(self, exc: BaseException | None) -> dict:
        """The state.json fields an end with EXC (None: normal) writes."""
        if exc is None:
            return {"status": "finished", "message": "finished", **self._final}
        ckpts = rf.complete_checkpoints(self.run_dir)
        if isinstance(exc, KeyboardInterrupt):
            name = getattr(exc, "signal_name", None)  # engine.stopping.Stopped: which signal
            how = f"stopped by {name}" if name else "interrupted"
            if ckpts:
                message = f"{how}; --resume continues from {ckpts[-1].name}"
            else:
                message = f"{how} before the first complete checkpoint; --resume needs one, so start it again"
            return {"status": "interrupted", "message": message, **({"signal": name} if name else {})}
        message = failure_reason(exc, self._oom_advice, self.writing)
        if self.world.distributed:
            message = self._first_rank_failure(message)
        if ckpts and "--resume" not in message:
            message += f" (--resume continues from {ckpts[-1].name})"
        return {"status": "failed", "message": message}

    def _first_rank_failure(self, message: str) -> str:
        """In a run on several processes: record this process's failure (for the launcher), and when another rank
        failed first (this one then only saw its connection close), say that one's error instead."""
        from wizard.engine.distributed import rank_failures, record_failure

        record_failure(self.run_dir, self.world, message)
        first = rank_failures(self.run_dir)
        if first and first[0].get("rank") != self.world.rank:
            return f"rank {first[0]['rank']} failed: {first[0]['reason']} (torchrun stopped the other processes)"
        return message

    def _end(self, exc: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            log.error("run failed", exc_info=exc)  # the traceback goes to train.log, the CLI prints one line
        now = time.time()
        end = {"ended_at": now, **self._ending(exc)}
        if "started_at" in self.state and "elapsed_s" not in end:
            end["elapsed_s"] = round(now - self.state["started_at"], 1)
        reporter, sampler = self.reporter, self.sampler
        steps = [lambda: self.update(**end)]
        if reporter is not None:
            steps += [lambda: reporter.on_end(self.state), reporter.close]
        if sampler is not None:
            steps.append(sampler.stop)
        # Every step runs even when one before it fails: a sampler thread or a hidden cursor left behind is
        # worse than a second error; and such an error never hides the one that ended the run.
        failures = []
        for step in steps:
            try:
                step()
            except Exception as problem:  # noqa: BLE001 - re-raised below unless the run's own error wins
                log.error("while ending the run", exc_info=problem)
                failures.append(problem)
        if self.handler is not None:
            detach_log(self.handler)
        if failures and exc is None:
            raise failures[0]
