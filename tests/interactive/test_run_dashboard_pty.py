"""A real training run in a real pseudo-terminal draws the live dashboard and leaves the summary."""
from __future__ import annotations

import json
import os
import re
import sys

import pexpect
import pytest

from tests.conftest import ROOT
from tests.helpers import write_spec
from wizard import run_folder as rf
from wizard.monitor.panels import NO_GPU_PREFIX

pytestmark = [pytest.mark.slow, pytest.mark.process]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]")


def test_run_in_a_terminal_shows_the_panels(tmp_path, tiny_model_dir, identity_jsonl):
    spec = write_spec(tmp_path / "spec.yaml", tiny_model_dir, identity_jsonl, tmp_path / "runs", method="full",
                      name="live", train={"max_steps": 30, "logging_steps": 2, "save_steps": 30})
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TUNE_WIZARD_PLAIN", "COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
    child = pexpect.spawn(sys.executable, ["-m", "wizard", "run", str(spec)], cwd=str(ROOT), env=env,
                          dimensions=(40, 200), encoding="utf-8", codec_errors="replace", timeout=600)
    child.expect(pexpect.EOF)
    child.close()
    screen = ANSI.sub("", child.before)
    assert child.exitstatus == 0, screen[-3000:]
    for needle in ("live · ", "sft/full", "─ loss ", "step 30/30", "run finished", NO_GPU_PREFIX):
        assert needle in screen, needle
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert json.loads((run / rf.STATE).read_text())["status"] == "finished"
    assert f"adapter     {run / rf.ADAPTER}" in screen  # wide enough that the summary's path is not wrapped
