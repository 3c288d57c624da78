"""The live dashboard as a Reporter, and the factory that picks it or the plain line reporter.

Engine hooks only update a DashboardState under a lock; Rich's refresh thread builds and draws frames
(about once a second) so the training loop never waits on the terminal.
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live

from wizard.hubs import env_on
from wizard.monitor import panels
from wizard.monitor.reporting import PlainReporter, Reporter, RunInfo
from wizard.monitor.state import DashboardState
from wizard.monitor.system import sample_system

# Libraries whose loggers print straight to the terminal (transformers binds the real stderr when it is
# imported, so Live's stdout/stderr redirection never sees those lines and they would tear the frame).
LIBRARY_LOGGERS = ("transformers", "peft", "accelerate", "trl", "datasets", "bitsandbytes")


class _ToLogTail(logging.Handler):
    """Library warnings go to the dashboard's log tail while it is on screen."""

    def __init__(self, reporter: LiveReporter):
        super().__init__(level=logging.WARNING)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = "error" if record.levelno >= logging.ERROR else "warning"
            self.reporter.on_event(f"{record.name}: {record.getMessage()}", level)
        except Exception:  # noqa: BLE001 - logging must never break training
            self.handleError(record)


class LiveReporter(Reporter):
    """Rich Live dashboard: header, loss chart, GPU (or CPU/RAM) panel, log tail; a summary at the end.

    run_dir: the run folder it shows. console: where to draw (a TTY Console by default). sampler: the run's
    object from start_sampler(); the panel draws its rows, and whoever started it stops it (None: no GPU
    panel, the CPU/RAM one with the reason). refresh_per_second: frame rate of the drawing thread.
    capture_library_logs: while the dashboard is up, terminal handlers of LIBRARY_LOGGERS are detached
    and their warnings shown in the log tail instead (file handlers, e.g. train.log, are left alone).
    """

    def __init__(self, run_dir: str | Path | None = None, console: Console | None = None, *,
                 refresh_per_second: float = 1.0, sampler=None, capture_library_logs: bool = True):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.console = console or Console()
        self.refresh_per_second = refresh_per_second
        self.state = DashboardState(source="live")
        if self.run_dir is not None:
            self.state.run_dir = str(self.run_dir)
        self.sampler = sampler
        self._lock = threading.RLock()
        self._live: Live | None = None
        self._closed = False
        self._last_system = 0.0
        self.capture_library_logs = capture_library_logs
        self._detached: list = []         # (logger, handlers taken off it, our handler)
        self.frames = 0          # frames built, and the seconds spent building them (bench/diagnostics)
        self.build_s = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._live is not None or self._closed:
            return
        if self.sampler is not None:
            self.state.gpu_reason = self.sampler.unavailable_reason
            self.sampler.add_listener(self._on_gpu_sample)
        elif self.state.gpu_reason is None:
            self.state.gpu_reason = "GPU sampling is off"
        self._live = Live(console=self.console, get_renderable=self.frame, auto_refresh=True,
                          refresh_per_second=self.refresh_per_second, transient=False,
                          redirect_stdout=True, redirect_stderr=True, vertical_overflow="crop")
        if self.capture_library_logs:
            self._capture_logs()
        self._live.start(refresh=True)  # the dashboard shows at once, not one refresh period later
        atexit.register(self.close)  # a crash must not leave the terminal's cursor hidden

    def _capture_logs(self) -> None:
        terminal = {sys.__stderr__, sys.__stdout__, sys.stderr, sys.stdout, self.console.file}
        to_tail = _ToLogTail(self)
        for name in LIBRARY_LOGGERS:
            lg = logging.getLogger(name)
            taken = [(i, h) for i, h in enumerate(lg.handlers)
                     if type(h) is logging.StreamHandler and h.stream in terminal]
            for _, h in taken:
                lg.removeHandler(h)
            lg.addHandler(to_tail)
            self._detached.append((lg, taken, to_tail))

    def _restore_logs(self) -> None:
        for lg, taken, ours in self._detached:
            lg.removeHandler(ours)
            # Back where they were: handler order decides which output comes first.
            for i, h in taken:
                if h not in lg.handlers:
                    lg.handlers.insert(min(i, len(lg.handlers)), h)
        self._detached = []

    def _on_gpu_sample(self, row: dict) -> None:
        with self._lock:
            self.state.add_gpu_sample(row)

    def frame(self, width: int | None = None, height: int | None = None) -> RenderableType:
        """The current frame, built now (thread-safe). Default size: the console's, less one line."""
        t0 = time.perf_counter()
        now = time.time()
        system = None
        if not self.state.gpus and now - self._last_system >= 0.9:  # psutil outside the lock: hooks never wait
            self._last_system = now
            system = sample_system()
        with self._lock:
            st = self.state
            st.now = now
            if system is not None:
                st.add_system_sample(system)
            w, h = self.console.size
            # one spare line: an inline frame as tall as the terminal would scroll on every redraw
            out = panels.render(st, width or w, height or max(8, h - 1))
        self.frames += 1
        self.build_s += time.perf_counter() - t0
        return out

    # -- Reporter hooks --------------------------------------------------------------------------------
    def on_start(self, info: RunInfo) -> None:
        with self._lock:
            if self.run_dir is None and info.run_dir:
                self.run_dir = Path(info.run_dir)
            self.state.start(info)
        self._ensure_started()

    def on_log(self, row: dict) -> None:
        with self._lock:
            self.state.add_row(row)
        self._ensure_started()

    def on_event(self, text: str, level: str = "info") -> None:
        with self._lock:
            self.state.add_event(text, level)
        self._ensure_started()

    def on_end(self, state: dict) -> None:
        with self._lock:
            self.state.finish(state)

    def close(self) -> None:
        """Stop the drawing thread; the last frame (with the summary) stays on screen. The sampler is left to
        its owner."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            if not self.state.done:  # closed without on_end: say so rather than look like it still runs
                self.state.finish({"status": "stopped", "message": "the run stopped before reporting its end"})
        if self._live is not None:
            self._restore_logs()
            self._live.stop()  # draws the final frame once more, in full
            w, h = self.console.size
            with self._lock:
                _, summary_h = panels.summary_panel(self.state, w)
                if panels.HEADER_H + summary_h > max(8, h - 1):  # the frame had no room for the summary
                    self.console.print(panels.summary_panel(self.state, w)[0])
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001 - interpreter shutting down
            pass


def wants_live(stream: TextIO) -> bool:
    """A live dashboard only on a real terminal that can move its cursor."""
    if env_on("TUNE_WIZARD_PLAIN"):
        return False
    if os.environ.get("TERM", "") in ("dumb", "unknown"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def make_reporter(run_dir: str | Path | None, stream: TextIO | None = None, plain: bool = False,
                  sampler=None, **live_options) -> Reporter:
    """LiveReporter on a terminal, PlainReporter when asked (`--plain`) or otherwise (pipes, nohup, CI,
    TERM=dumb, TUNE_WIZARD_PLAIN=1). NO_COLOR keeps the dashboard but drops its colours.

    sampler: the run's GPU sampler (start_sampler(run_dir)), which the dashboard draws; the run starts it
    whatever the reporter, so gpu.jsonl is written for `tune-wizard watch` under nohup too, and stops it.
    """
    stream = stream or sys.stdout
    if plain or not wants_live(stream):
        return PlainReporter(stream)
    no_color = os.environ.get("NO_COLOR", "") != ""
    console = Console(file=stream, force_terminal=True, no_color=no_color,
                      color_system=None if no_color else "auto")
    return LiveReporter(run_dir, console, sampler=sampler, **live_options)
