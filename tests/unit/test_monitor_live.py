"""The live reporter and the factory that chooses it: real terminals (os.openpty), real pipes."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pytest
from rich.console import Console

from tests.helpers import FixedGpuReader
from wizard.monitor import panels
from wizard.monitor.live import LiveReporter, make_reporter, wants_live
from wizard.monitor.nvml import Sampler, start_sampler
from wizard.monitor.reporting import PlainReporter, RunInfo

ESC = "\x1b"
INFO = RunInfo(run_dir="", name="livetest", model="tiny-llama", task="sft", method="lora", total_steps=6,
               device="cpu")


@pytest.fixture
def tty():
    """The slave end of a real pseudo-terminal, as a text stream."""
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w", encoding="utf-8")
    yield stream
    stream.close()
    os.close(master)


def _env(monkeypatch, **values):
    for key in ("TERM", "NO_COLOR", "TUNE_WIZARD_PLAIN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_factory_picks_live_on_a_terminal(tmp_path, tty, monkeypatch):
    _env(monkeypatch, TERM="xterm-256color")
    rep = make_reporter(tmp_path, tty)
    assert isinstance(rep, LiveReporter) and rep.console.is_terminal and not rep.console.no_color


def test_factory_hands_the_runs_sampler_to_the_dashboard(tmp_path, tty, monkeypatch):
    _env(monkeypatch, TERM="xterm-256color")
    sampler = Sampler(FixedGpuReader(), tmp_path / "gpu.jsonl", period=0.05)  # never started: only passed on
    rep = make_reporter(tmp_path, tty, sampler=sampler)
    assert isinstance(rep, LiveReporter) and rep.sampler is sampler
    assert type(make_reporter(tmp_path, tty, plain=True, sampler=sampler)) is PlainReporter


def test_factory_honours_no_color_term_dumb_and_pipes(tmp_path, tty, monkeypatch):
    _env(monkeypatch, TERM="xterm", NO_COLOR="1")
    rep = make_reporter(tmp_path, tty)
    assert isinstance(rep, LiveReporter) and rep.console.no_color
    _env(monkeypatch, TERM="dumb")
    assert type(make_reporter(tmp_path, tty)) is PlainReporter
    _env(monkeypatch, TERM="xterm", TUNE_WIZARD_PLAIN="1")
    assert type(make_reporter(tmp_path, tty)) is PlainReporter
    _env(monkeypatch, TERM="xterm")
    r, w = os.pipe()
    with os.fdopen(w, "w") as pipe:
        assert not wants_live(pipe) and type(make_reporter(tmp_path, pipe)) is PlainReporter
    os.close(r)
    assert type(make_reporter(tmp_path, io.StringIO())) is PlainReporter


@pytest.mark.process
def test_piped_run_prints_plain_lines_without_escape_codes(tmp_path):
    """The synthetic run through a pipe, as under nohup or CI: one line per step, no escape codes."""
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONUNBUFFERED": "1"}
    env.pop("NO_COLOR", None)
    out = subprocess.run([sys.executable, "-m", "wizard.monitor.synthetic_run", str(tmp_path / "run"), "--steps", "12",
                          "--delay", "0.01"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert ESC not in out.stdout and "\r" not in out.stdout
    lines = out.stdout.splitlines()
    assert lines[0] == "reporter: PlainReporter"
    assert sum(1 for ln in lines if re.match(r"step \d+/12  epoch", ln)) == 12
    assert "[eval] step 10  eval_loss" in out.stdout and "checkpoint saved: checkpoints/checkpoint-10" in out.stdout
    assert "finished: training finished" in out.stdout


@pytest.fixture
def sampler(tmp_path):
    """The run's sampler, as RunLifecycle starts it and stops it after the reporter."""
    s = start_sampler(tmp_path)
    yield s
    s.stop()


def _live(tmp_path, sampler=None, width=100, height=30):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width, height=height, color_system="standard")
    return LiveReporter(tmp_path, console, refresh_per_second=20, sampler=sampler), buf


def test_live_reporter_draws_panels_and_leaves_the_summary(tmp_path, sampler):
    rep, buf = _live(tmp_path, sampler, height=50)  # tall enough for the log tail beside the summary
    rep.on_start(RunInfo(**{**INFO.__dict__, "run_dir": str(tmp_path)}))
    for s in range(1, 7):
        rep.on_log({"step": s, "epoch": s / 6, "loss": 2.0 / s, "lr": 1e-3, "grad_norm": 0.3, "elapsed_s": s,
                    "eta_s": 6 - s, "tokens_per_s": 100.0, "peak_mem_gb": 0.2})
    rep.on_log({"step": 6, "eval_loss": 0.5})
    rep.on_event("checkpoint saved: checkpoints/checkpoint-6")
    rep.on_end({"status": "finished", "message": "training finished", "final_loss": 0.33, "best_eval_loss": 0.5,
                "elapsed_s": 6.0, "peak_mem_gb": 0.2, "adapter_dir": str(tmp_path / "adapter"),
                "run_dir": str(tmp_path), "next_commands": [f"tune-wizard chat {tmp_path}"]})
    rep.close()
    rep.close()  # idempotent
    out = buf.getvalue()
    assert ESC in out  # it really drew a live display
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    for key in ("livetest", "tiny-llama", "step 6/6", "─ loss ", "checkpoint saved", "run finished",
                f"tune-wizard chat {tmp_path}", "final loss 0.33"):
        assert key in plain, key
    if rep.state.gpus:
        assert "─ GPU" in plain
    else:  # this machine: no NVML, so the CPU/RAM panel and the reason line
        assert "CPU / RAM" in plain and panels.NO_GPU_PREFIX in plain
        assert rep.sampler.unavailable_reason in plain
    assert (tmp_path / "gpu.jsonl").exists()
    assert rep.frames >= 1 and out.rstrip().endswith("\x1b[?25h")  # cursor shown again


def test_the_dashboard_draws_its_samplers_rows_and_leaves_stopping_it_to_the_run(tmp_path):
    reader = FixedGpuReader()
    sampler = Sampler(reader, tmp_path / "gpu.jsonl", period=0.05).start()
    try:
        rep, buf = _live(tmp_path, sampler)
        rep.on_start(RunInfo(**{**INFO.__dict__, "run_dir": str(tmp_path)}))
        deadline = time.time() + 10
        while reader.calls < 3 and time.time() < deadline:
            time.sleep(0.05)
        rep.close()
        assert sampler.running  # the run stops it, after its reporter
        assert rep.state.gpus[0]["name"] == "Test GPU" and len(rep.state.gpu_hist[0]["util"]) >= 3
        assert "Test GPU" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    finally:
        sampler.stop()
    assert not sampler.running and reader.shut


def test_without_a_sampler_the_dashboard_shows_cpu_and_says_why(tmp_path):
    rep, buf = _live(tmp_path)
    rep.on_start(RunInfo(**{**INFO.__dict__, "run_dir": str(tmp_path)}))
    rep.close()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert "CPU / RAM" in plain and "GPU sampling is off" in plain
    assert not (tmp_path / "gpu.jsonl").exists()  # a reporter never starts a sampler of its own


def test_closing_without_on_end_says_the_run_stopped(tmp_path):
    rep, buf = _live(tmp_path)
    rep.on_start(RunInfo(**{**INFO.__dict__, "run_dir": str(tmp_path)}))
    rep.on_log({"step": 1, "loss": 1.0})
    rep.close()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert "run stopped" in plain and "the run stopped before reporting its end" in plain


def test_frame_can_be_built_at_any_size_before_start(tmp_path):
    rep, _ = _live(tmp_path)
    console = Console(width=70, height=20, record=True, color_system=None, force_terminal=False)
    console.print(rep.frame(70, 20))
    text = console.export_text()
    assert "waiting for the first logged loss" in text
    assert all(len(line) <= 70 for line in text.splitlines())
    rep.close()


def test_library_warnings_go_to_the_log_tail_not_through_the_frame(tmp_path):
    """transformers binds the real stderr at import; while the dashboard is up its warnings are shown in
    the log tail, and its handler is put back afterwards."""
    import logging

    from transformers.utils import logging as hf_logging

    lg = logging.getLogger("transformers")
    before = list(lg.handlers)
    assert any(type(h) is logging.StreamHandler for h in before)
    # Warnings on, whatever an earlier test in this process left (the CLI's quiet_libraries lowers them to errors).
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    try:
        rep, buf = _live(tmp_path, height=50)
        rep.on_start(RunInfo(**{**INFO.__dict__, "run_dir": str(tmp_path)}))
        hf_logging.get_logger("transformers.trainer").warning("gradient checkpointing disables use_cache")
        assert [e.text for e in rep.state.events] == [
            "transformers.trainer: gradient checkpointing disables use_cache"]
        rep.close()
    finally:
        hf_logging.set_verbosity(verbosity)
    assert lg.handlers == before
