"""tune-wizard watch RUN_DIR: the live dashboard of a run started elsewhere, rebuilt from its files.

Reads state.json, metrics.jsonl, gpu.jsonl and train.log every --interval seconds. On a terminal it
draws the dashboard until the run ends, then leaves the summary; --once prints one frame; piped, it
prints one plain line per new logging step or event. Exit: 0 when the run finished (or --once),
1 when it failed, was interrupted or stopped (its process gone), 2 when RUN_DIR is not a run folder.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from wizard.errors import UserError


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. runs/demo-20250101-120000")
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="seconds between reads of the run folder (default 1)")


def check_run_dir(path: str) -> Path:
    from wizard import run_folder as rf

    p = Path(path)
    if rf.is_run_dir(p):
        return p
    if not p.exists():
        raise UserError(f"{path}: no such folder", hint="pass a run folder that `tune-wizard run` created, "
                        "e.g. runs/<name>-<yyyymmdd-hhmmss>")
    inner = sorted((c for c in p.iterdir() if rf.is_run_dir(c)), key=lambda c: c.name, reverse=True) \
        if p.is_dir() else []
    hint = (f"it holds run folders; the newest is {inner[0]}: tune-wizard watch {inner[0]}" if inner else
            "pass a run folder that `tune-wizard run` created, e.g. runs/<name>-<yyyymmdd-hhmmss>")
    raise UserError(f"{path} is not a run folder (it has no {rf.SPEC} and {rf.RUN_INFO})", hint=hint)


def run(args) -> int:
    from rich.console import Console

    from wizard.monitor.live import wants_live
    from wizard.monitor.state import RunFolderFollower

    run_dir = check_run_dir(args.run_dir)
    if not args.interval > 0:
        raise UserError(f"--interval {args.interval}: must be a number of seconds above 0", hint="--interval 1")
    follower = RunFolderFollower(run_dir)
    if args.once:
        _print_frame(Console(), follower.poll())
        return 0
    if not wants_live(sys.stdout):
        return _follow_plain(follower, args.interval)
    return _follow_live(follower, args.interval)


def _print_frame(console, st) -> None:
    from wizard.monitor import panels

    w, h = console.size
    # piped output has no screen to fit: use a tall frame so the chart keeps its room
    h = max(8, h - 1) if console.is_terminal else max(40, h)
    console.print(panels.render(st, w, h))
    if st.done:
        _, summary_h = panels.summary_panel(st, w)
        if panels.HEADER_H + summary_h > h:  # the frame had no room for it
            console.print(panels.summary_panel(st, w)[0])


def _exit_code(st) -> int:
    return 0 if st.status == "finished" else 1


def _follow_live(follower, interval: float) -> int:
    from rich.console import Console
    from rich.live import Live

    from wizard.monitor import panels

    console = Console()
    lock = threading.Lock()
    st = follower.poll()

    def frame():
        with lock:
            st.now = time.time()
            w, h = console.size
            return panels.render(st, w, max(8, h - 1))

    with Live(console=console, get_renderable=frame, refresh_per_second=max(0.5, min(4.0, 1.0 / interval)),
              transient=False, vertical_overflow="crop"):
        while not st.done:
            time.sleep(interval)
            with lock:
                follower.poll()
    w, h = console.size
    _, summary_h = panels.summary_panel(st, w)
    if panels.HEADER_H + summary_h > max(8, h - 1):
        console.print(panels.summary_panel(st, w)[0])
    return _exit_code(st)


def _follow_plain(follower, interval: float) -> int:
    from wizard.monitor.reporting import format_log_line

    out = sys.stdout
    st = follower.poll()
    print(f"watching {follower.run_dir}: {st.name} · {st.model} · {st.task}/{st.method} ({st.status})", file=out)
    while True:
        for row in follower.new_rows:
            print(format_log_line(row, st.total_steps), file=out)
        for level, text in follower.new_events:
            print(text if level == "info" else f"{level}: {text}", file=out)
        out.flush()
        if st.done:
            print(f"{st.status}: {st.message}".rstrip(": "), file=out, flush=True)
            return _exit_code(st)
        time.sleep(interval)
        follower.poll()
