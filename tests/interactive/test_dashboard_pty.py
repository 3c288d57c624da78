"""The live dashboard in a real pseudo-terminal: a synthetic run fed to make_reporter's choice, and
`tune-wizard watch` following a run written by another process."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pexpect
import pytest

from tests.conftest import ROOT
from wizard import run_folder as rf
from wizard.monitor import nvml

pytestmark = pytest.mark.process
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]")


def _nvml_reason():
    reader, reason = nvml.probe()
    if reader is not None:
        reader.shutdown()
    return reason


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TUNE_WIZARD_PLAIN", "COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
    return env


def _spawn(args, rows=40, cols=110):
    return pexpect.spawn(sys.executable, args, cwd=str(ROOT), env=_env(), dimensions=(rows, cols),
                         encoding="utf-8", timeout=60)


def test_live_dashboard_draws_in_a_pty_and_leaves_the_summary(tmp_path):
    run_dir = tmp_path / "demo-run"
    child = _spawn(["-m", "wizard.monitor.synthetic_run", str(run_dir), "--steps", "20", "--delay", "0.1"])
    child.expect("reporter: LiveReporter")
    child.expect(r"\x1b\[\?25l")  # Rich hid the cursor: a live display, not plain lines
    child.expect("DONE")
    raw = child.before
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    screen = ANSI.sub("", raw)
    for key in ("tune-wizard", "demo", "tiny-llama · sft/lora", "step 20/20", "─ loss ", "ema(",
                "─ log ", "checkpoint saved: checkpoints/checkpoint-10", "run finished", "final loss",
                f"tune-wizard chat {run_dir}"):
        assert key in screen, key
    reason = _nvml_reason()
    if reason:  # no NVIDIA driver here: the CPU/RAM panel and the one line saying why
        assert "CPU / RAM" in screen and f"no GPU panel: {reason}" in screen
    else:
        assert "─ GPU" in screen
    assert "a stray print from a library" in screen  # printed above the dashboard, not lost
    assert raw.rstrip().endswith("\x1b[?25h")  # the cursor is back
    assert (run_dir / rf.GPU).exists()


def test_watch_follows_another_process_in_a_pty_until_the_run_ends(tmp_path):
    run_dir = tmp_path / "watched"
    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    writer = subprocess.Popen([sys.executable, "-m", "wizard.monitor.synthetic_run", str(run_dir), "--steps", "20",
                               "--delay", "0.1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not rf.is_run_dir(run_dir) and time.time() < deadline:
            time.sleep(0.05)
        child = _spawn(["-m", "wizard", "watch", str(run_dir), "--interval", "0.2"], rows=45)
        child.expect(pexpect.EOF)
        child.close()
    finally:
        writer.wait(timeout=60)
    assert child.exitstatus == 0
    screen = ANSI.sub("", child.before)
    for key in ("demo · tiny-llama · sft/lora", "─ loss ", "step 20/20", "run finished", "training finished",
                "checkpoint saved: checkpoints/checkpoint-20"):
        assert key in screen, key
