"""Dashboard panels are pure functions of a DashboardState: rendered on a fixed-size Console and compared.

Snapshots live in tests/unit/snapshots/; after an intended change of the look, regenerate them with
UPDATE_SNAPSHOTS=1 pytest tests/unit/test_monitor_panels.py and review the diff.
"""
from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from wizard.monitor import panels
from wizard.monitor.reporting import RunInfo
from wizard.monitor.state import DashboardState

SNAPSHOTS = Path(__file__).parent / "snapshots"
T0 = 1_700_000_000.0
RUN = "runs/demo-20250101-120000"
H100 = "NVIDIA H100 80GB HBM3"


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")  # log-tail timestamps are local time
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def export(renderable, width: int = 100, height: int = 40) -> str:
    console = Console(width=width, height=height, record=True, color_system=None, force_terminal=False)
    console.print(renderable)
    return console.export_text()


def check_size(text: str, width: int, height: int) -> list[str]:
    lines = text.rstrip("\n").split("\n")
    assert len(lines) <= height, f"{len(lines)} lines > {height}"
    assert all(len(ln) <= width for ln in lines), max(len(ln) for ln in lines)
    return lines


def snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    # A missing snapshot fails rather than being written: otherwise a lost file would pass unnoticed.
    assert path.is_file(), f"no snapshot {path}: create it with UPDATE_SNAPSHOTS=1 pytest {__file__} and review it"
    assert text == path.read_text(encoding="utf-8"), f"frame differs from {path}"


def gpu(index: int = 0, util: float = 97.0, used: float = 41.3, **over) -> dict:
    g = {"index": index, "name": H100, "util": util, "mem_used_gb": used, "mem_total_gb": 79.65, "temp_c": 54,
         "power_w": 512.4, "power_limit_w": 700.0, "sm_clock_mhz": 1980, "throttle": []}
    g.update(over)
    return g


def make_state(*, steps: int = 120, total: int = 400, gpus: int = 1, dpo: bool = False,
               finished: bool = False) -> DashboardState:
    st = DashboardState(source="live")
    st.start(RunInfo(run_dir=RUN, name="demo", model="Qwen/Qwen2.5-7B-Instruct", task="dpo" if dpo else "sft",
                     method="qlora", total_steps=total, device=f"cuda:0 ({H100})"), now=T0)
    for s in range(1, steps + 1):
        row = {"step": s, "epoch": s / 100, "loss": 2.2 * math.exp(-s / 40) + 0.35 + 0.08 * math.sin(s * 1.7),
               "lr": 2e-4, "grad_norm": 0.42, "tokens_per_s": 12_700.4, "elapsed_s": s * 0.5,
               "eta_s": (total - s) * 0.5, "peak_mem_gb": 12.71, "time": T0 + s * 0.5}
        if dpo:
            row.update({"rewards/chosen": 0.02 * s, "rewards/rejected": -0.01 * s, "rewards/margins": 0.03 * s,
                        "rewards/accuracies": min(1.0, 0.5 + s / 200)})
        st.add_row(row)
        if s % 40 == 0:
            st.add_row({"step": s, "epoch": s / 100, "eval_loss": 2.0 * math.exp(-s / 40) + 0.45})
    for i in range(60):
        st.add_gpu_sample({"time": T0 + i, "gpus": [
            gpu(k, util=90 + (i * 7 + k) % 10, used=30 + i * 0.2 + k, throttle=["sw_power_cap"] if k == 1 else [])
            for k in range(gpus)]})
    st.add_event("model loaded: 7.6B parameters, 10.1M trainable (0.13%)", "info", T0 + 1)
    st.add_event("checkpoint saved: checkpoints/checkpoint-100", "info", T0 + 50)
    st.add_event("grad norm 12.3 at step 101: clipped", "warning", T0 + 51)
    if finished:
        st.finish({"status": "finished", "message": "training finished in 1:00", "final_loss": 0.4123,
                   "best_eval_loss": 0.5012, "elapsed_s": 60.0, "peak_mem_gb": 12.71,
                   "adapter_dir": f"{RUN}/adapter", "run_dir": RUN,
                   "next_commands": [f"tune-wizard chat {RUN}", f"tune-wizard export {RUN} --merge",
                                     f"tune-wizard serve {RUN}"]})
    st.now = T0 + 61
    return st


def test_running_frame_with_gpu_100x40():
    text = export(panels.render(make_state(), 100, 40))
    lines = check_size(text, 100, 40)
    assert len(lines) == 40  # the frame fills the screen it is given
    for key in ("demo", "Qwen/Qwen2.5-7B-Instruct", "sft/qlora", "step 120/400", " 30%", "epoch 1.20",
                "elapsed 01:01", "12,700 tok/s", "─ loss ", "lr 2.00e-04", "grad norm 0.42", "eval ",
                "best ", "─ GPU ", H100, "54°C", "512/700 W", "1980 MHz", "mem 41.8/79.7 GiB  52%",
                "─ log ", "checkpoint saved", "warning grad norm", "running"):
        assert key in text, key
    assert panels.NO_GPU_PREFIX not in text
    snapshot("dashboard_running_gpu_100x40", text)


def test_no_nvml_fallback_shows_cpu_ram_and_the_reason():
    st = make_state(gpus=0)
    st.gpu_reason = "NVML unavailable: NVML Shared Library Not Found (no NVIDIA driver on this machine)"
    for i in range(30):
        st.add_system_sample({"cpu_percent": 50 + i, "cpu_count": 2, "ram_used_gb": 6.2, "ram_total_gb": 23.5,
                              "rss_gb": 1.25})
    text = export(panels.render(st, 100, 40))
    check_size(text, 100, 40)
    assert "CPU / RAM" in text and "79% of 2 cores" in text and "6.2/23.5 GiB" in text
    assert "this process 1.25 GiB" in text
    assert f"{panels.NO_GPU_PREFIX} NVML unavailable: NVML Shared Library Not Found" in text
    assert "─ GPU " not in text
    snapshot("dashboard_running_cpu_100x40", text)


def test_finished_frame_keeps_a_summary_with_paths_and_next_commands():
    text = export(panels.render(make_state(steps=400, finished=True), 100, 40))
    check_size(text, 100, 40)
    for key in ("run finished", "training finished in 1:00", "final loss 0.4123", "best eval loss",
                "time 01:00", "peak memory 12.71 GiB", f"adapter     {RUN}/adapter", f"run folder  {RUN}",
                f"tune-wizard chat {RUN}", f"tune-wizard export {RUN} --merge", f"tune-wizard serve {RUN}"):
        assert key in text, key
    assert "ETA" not in text  # a finished run has nothing left to wait for
    snapshot("dashboard_finished_100x40", text)


def test_dpo_run_shows_rewards_margins_and_accuracy():
    text = export(panels.render(make_state(dpo=True), 100, 40))
    check_size(text, 100, 40)
    for key in ("dpo/qlora", "rewards chosen 2.4", "rejected -1.2", "margin 3.6", "accuracy 1.00"):
        assert key in text, key


def test_eight_gpus_get_one_row_each_when_the_screen_is_short():
    st = make_state(gpus=8)
    tall = export(panels.render(st, 100, 40))
    check_size(tall, 100, 40)
    assert "GPUs (8)" in tall and len(re.findall(r"│ \d NVIDIA H100", tall)) == 8 and tall.count("util ") == 8
    assert "throttle sw_power_cap" in tall
    short = export(panels.render(st, 100, 24), height=24)
    check_size(short, 100, 24)
    assert len(re.findall(r"│ \d H100 80GB HBM3", short)) == 8 and "util " not in short  # compact rows


@pytest.mark.parametrize("width,height", [(40, 8), (60, 16), (80, 24), (120, 50), (160, 40), (220, 60)])
def test_layout_fits_any_terminal(width, height):
    for st in (make_state(), make_state(steps=400, finished=True), make_state(gpus=4, dpo=True)):
        text = export(panels.render(st, width, height), width, height)
        check_size(text, width, height)
        assert "demo" in text


def test_wide_terminal_puts_loss_beside_gpu_and_log():
    text = export(panels.render(make_state(), 160, 40), 160, 40)
    lines = check_size(text, 160, 40)
    row = next(ln for ln in lines if "─ loss " in ln)
    assert "─ GPU " in row  # same line: side by side


def test_empty_state_before_the_first_step():
    st = DashboardState()
    st.start(RunInfo(run_dir=RUN, name="demo", model="m", task="sft", method="lora", total_steps=0, device="cpu"),
             now=T0)
    st.now = T0 + 3
    text = export(panels.render(st, 100, 40))
    check_size(text, 100, 40)
    assert "waiting for the first logged loss" in text and "step 0/?" in text and "no events yet" in text


def test_nan_losses_are_counted_not_printed_as_numbers():
    st = make_state(steps=30)
    st.add_row({"step": 31, "loss": float("nan"), "lr": 2e-4})
    text = export(panels.render(st, 100, 40))
    assert "1 non-finite" in text and "×" in text


def test_watch_state_says_when_the_run_went_quiet():
    st = make_state()
    st.source = "watch"
    st.updated_at = st.row_time = st.gpu_time = T0 + 60
    st.now = T0 + 60 + 600
    text = export(panels.render(st, 100, 40))
    assert "no update for 10m" in text and "last sample 10m ago" in text


def test_a_missing_snapshot_fails_and_says_how_to_create_it(monkeypatch):
    monkeypatch.delenv("UPDATE_SNAPSHOTS", raising=False)
    with pytest.raises(AssertionError, match="UPDATE_SNAPSHOTS=1"):
        snapshot("no_such_frame", "a frame")
    assert not (SNAPSHOTS / "no_such_frame.txt").exists()
