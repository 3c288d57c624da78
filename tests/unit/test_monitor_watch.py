"""`tune-wizard watch` on run folders built by hand (real files) and on a run being written right now."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, cli
from wizard import run_folder as rf

pytestmark = pytest.mark.process


def build_run(d, status="finished", steps=40):
    d.mkdir(parents=True, exist_ok=True)
    (d / rf.SPEC).write_text("version: 1\nname: handmade\nmodel: {id: tiny-llama}\ntask: sft\nmethod: lora\n")
    rf.write_json_atomic(d / rf.RUN_INFO, {"seed": 42})
    t0 = time.time() - 200
    for s in range(1, steps + 1):
        rf.append_jsonl(d / rf.METRICS, {"step": s, "epoch": s / steps, "loss": 2 * math.exp(-s / 10) + 0.2,
                                         "lr": 1e-3, "grad_norm": 0.7, "tokens_per_s": 321.0, "elapsed_s": 2.0 * s,
                                         "eta_s": 2.0 * (steps - s), "peak_mem_gb": 1.25, "time": t0 + 2 * s})
        if s % 20 == 0:
            rf.append_jsonl(d / rf.METRICS, {"step": s, "eval_loss": 2 * math.exp(-s / 10) + 0.3})
    rf.append_jsonl(d / rf.GPU, {"time": t0 + 80, "gpus": [{
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "util": 88, "mem_used_gb": 21.5, "mem_total_gb": 79.65,
        "temp_c": 51, "power_w": 401.0, "power_limit_w": 700.0, "sm_clock_mhz": 1755, "throttle": []}]})
    (d / rf.LOG).write_text("2025-01-01 12:00:00,000 INFO wizard.run: checkpoint saved: checkpoints/checkpoint-20\n")
    state = {"status": status, "name": "handmade", "model": "tiny-llama", "task": "sft", "method": "lora",
             "step": steps, "total_steps": steps, "started_at": t0, "updated_at": t0 + 80, "device": "cuda:0",
             "run_dir": str(d), "adapter_dir": str(d / "adapter"),
             "message": "training finished" if status == "finished" else "training failed: CUDA out of memory"}
    if status != "running":
        state.update(final_loss=0.2366, best_eval_loss=0.3271, elapsed_s=80.0, peak_mem_gb=1.25,
                     next_commands=[f"tune-wizard chat {d}", f"tune-wizard export {d} --merge"])
    rf.write_json_atomic(d / rf.STATE, state)
    return d


def test_watch_once_on_a_finished_run_prints_one_frame_with_the_summary(tmp_path):
    d = build_run(tmp_path / "runs" / "handmade-20250101-120000")
    out = cli("watch", str(d), "--once", timeout=60, env={"COLUMNS": "220"})  # wide: tmp paths stay on one line
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "\x1b" not in text
    assert all(len(line) <= 220 for line in text.splitlines())
    for key in ("handmade", "tiny-llama", "sft/lora", "step 40/40", "100%", "─ loss ", "eval 0.3366",
                "─ GPU ", "NVIDIA H100 80GB HBM3", "21.5/79.7 GiB", "checkpoint saved", "run finished",
                "final loss 0.2366", "best eval loss 0.3271", "peak memory 1.25 GiB",
                f"tune-wizard chat {d}", f"tune-wizard export {d} --merge"):
        assert key in text, key
    assert len(re.findall(r"[\u2801-\u28ff]", text)) > 20  # the braille chart is there


def test_watch_once_on_a_running_run_without_gpu_samples(tmp_path):
    d = build_run(tmp_path / "r", status="running")
    (d / rf.GPU).unlink()
    writer = rf.take_lock(d)  # the run's writer is alive (this test)
    try:
        out = cli("watch", str(d), "--once", timeout=60)
    finally:
        writer.release()
    assert out.returncode == 0, out.stderr
    assert "running" in out.stdout and "ETA" in out.stdout and "run finished" not in out.stdout
    assert "CPU / RAM (this machine)" in out.stdout and "no GPU panel: no GPU samples in gpu.jsonl" in out.stdout


def test_watch_refuses_a_folder_that_is_not_a_run_and_names_it(tmp_path):
    out = cli("watch", str(tmp_path), "--once", timeout=60)
    assert out.returncode == 2
    assert f"{tmp_path} is not a run folder" in out.stderr and "fix:" in out.stderr
    missing = cli("watch", str(tmp_path / "nope"), timeout=60)
    assert missing.returncode == 2 and f"{tmp_path / 'nope'}: no such folder" in missing.stderr
    run = build_run(tmp_path / "runs" / "handmade-20250102-000000")
    parent = cli("watch", str(tmp_path / "runs"), timeout=60)
    assert parent.returncode == 2 and f"tune-wizard watch {run}" in parent.stderr  # points at the newest run
    bad = cli("watch", str(run), "--interval", "0", timeout=60)
    assert bad.returncode == 2 and "--interval" in bad.stderr


def test_watch_piped_prints_plain_lines_and_exit_code_follows_the_run(tmp_path):
    done = cli("watch", str(build_run(tmp_path / "ok")), timeout=60)
    assert done.returncode == 0 and "\x1b" not in done.stdout
    assert done.stdout.count("\nstep ") == 40 and "[eval] step 20" in done.stdout
    assert done.stdout.rstrip().endswith("finished: training finished")
    failed = cli("watch", str(build_run(tmp_path / "bad", status="failed")), timeout=60)
    assert failed.returncode == 1 and "failed: training failed: CUDA out of memory" in failed.stdout


def test_watch_follows_a_run_while_it_is_written(tmp_path):
    """A synthetic run writes its folder in one process; `watch` follows it from another."""
    run_dir = tmp_path / "live"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    writer = subprocess.Popen([sys.executable, "-m", "wizard.monitor.synthetic_run", str(run_dir), "--steps", "20",
                               "--delay", "0.08"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not rf.is_run_dir(run_dir) and time.time() < deadline:
            time.sleep(0.05)
        out = cli("watch", str(run_dir), "--interval", "0.2", timeout=60)
    finally:
        writer.wait(timeout=60)
    assert out.returncode == 0, out.stderr
    steps = [int(m) for m in re.findall(r"^step (\d+)/20", out.stdout, flags=re.M)]
    assert steps == list(range(1, 21))  # every step once, in order, though read in pieces
    assert "checkpoint saved: checkpoints/checkpoint-20" in out.stdout
    assert out.stdout.rstrip().endswith("finished: training finished")
    assert json.loads((run_dir / rf.STATE).read_text())["status"] == "finished"
