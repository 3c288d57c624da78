"""Stopping a run on a signal without losing work.

Ctrl-C (SIGINT) and SIGTERM (what `docker stop`, systemd and Slurm preemption send) ask the run to stop: during
training it finishes the step it is in, saves a checkpoint and ends `interrupted`, so `--resume` continues
exactly there. Before the training loop (loading) and after it (the final save) there is nothing to save, and it
stops at once. A second signal, or a step boundary not reached within the grace period
(TUNE_WIZARD_STOP_GRACE_S, default 20 s: below Slurm's usual 30 s before SIGKILL; give `docker stop` a longer
-t), stops at once too: the newest complete checkpoint stays the one --resume takes.

Exit status 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM), as shells and schedulers expect.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

GRACE_ENV = "TUNE_WIZARD_STOP_GRACE_S"
DEFAULT_GRACE_S = 20.0

log = logging.getLogger("wizard.run")


class Stopped(KeyboardInterrupt):
    """The run was stopped by a signal (a KeyboardInterrupt, so everything that cleans up on Ctrl-C does)."""

    def __init__(self, signum: int, checkpoint_saved: bool = False):
        self.signum = signum
        self.exit_code = 128 + signum
        self.checkpoint_saved = checkpoint_saved
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name



def grace_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S)))
    except ValueError:
        return DEFAULT_GRACE_S


class GracefulStop:
    """Installed around a run (in the main thread; elsewhere it does nothing and signals act as usual).

        with GracefulStop() as stop:
            ...                       # loading: a signal raises Stopped at once
            with stop.in_training():  # a signal sets stop.requested; the Trainer callback ends the loop
                trainer.train()
            stop.raise_if_requested() # the loop ended on a signal: the run ends interrupted
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: int | None = None  # the signal that asked for a stop at the next step boundary
        self._training = False
        self._previous: dict = {}
        self._active = False

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
            self._active = True
        return self

    def __exit__(self, *exc) -> bool:
        self._disarm()
        if self._active:
            for s, handler in self._previous.items():
                signal.signal(s, handler)
        return False

    def in_training(self):
        stop = self

        class _Loop:
            def __enter__(self):
                stop._training = True

            def __exit__(self, *exc):
                stop._training = False
                return False

        return _Loop()

    def raise_if_requested(self) -> None:
        if self.requested is not None:
            self._disarm()
            raise Stopped(self.requested, checkpoint_saved=True)

    # -- signal handlers (run in the main thread, between bytecodes) --------------------------------------
    def _handle(self, signum, frame) -> None:
        if self.requested is not None or not self._training:
            self._disarm()
            raise Stopped(signum)
        # Only a flag here: the Trainer callback acts on it (and logs it) at the step boundary, outside any
        # lock a log handler or the dashboard may hold right now.
        self.requested = signum
        if hasattr(signal, "setitimer"):
            signal.signal(signal.SIGALRM, self._grace_over)
            signal.setitimer(signal.ITIMER_REAL, grace_seconds())

    def _grace_over(self, signum, frame) -> None:
        log.warning("no step boundary within the grace period: stopping now")
        raise Stopped(self.requested or signal.SIGTERM)

    def _disarm(self) -> None:
        if self._active and hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)
