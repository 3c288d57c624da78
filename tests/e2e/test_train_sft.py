"""End to end through the real CLI: qlora, lora and full train a tiny real model; resume is exact."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli
from tests.helpers import write_spec
from wizard import run_folder as rf
from wizard import spec as specmod

pytestmark = [pytest.mark.slow, pytest.mark.process]


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in rf.read_jsonl(run / rf.METRICS) if "loss" in r}


@pytest.mark.parametrize("method", ["qlora", "lora", "full"])
def test_each_method_trains_and_fills_the_run_folder(tmp_path, request, identity_jsonl, method):
    # LoRA adapts a trained model: on random frozen weights it barely moves the loss, so the adapter
    # methods train the real bundled 135M model; full fine-tuning trains a tiny model built from a config.
    model = request.getfixturevalue("tiny_model_dir" if method == "full" else "bundled_model_dir")
    lr = 3e-2 if method == "full" else 2e-3
    spec = write_spec(tmp_path / "spec.yaml", model, identity_jsonl, tmp_path / "runs", method=method,
                      name=f"t-{method}", train={"lr": lr})
    r = cli("run", str(spec), "--plain")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    run = only_run(tmp_path / "runs")
    assert run.name.startswith(f"t-{method}-")
    for f in (rf.SPEC, rf.RUN_INFO, rf.STATE, rf.METRICS, rf.LOG, rf.LOSS_PLOT):
        assert (run / f).is_file(), f
    assert rf.complete_checkpoints(run), "no complete checkpoint"
    adapter = run / rf.ADAPTER
    assert (adapter / ("model.safetensors" if method == "full" else "adapter_model.safetensors")).is_file()
    info = json.loads((run / rf.RUN_INFO).read_text())
    assert info["seed"] == 7 and info["versions"]["torch"] and info["versions"]["transformers"]
    state = json.loads((run / rf.STATE).read_text())
    assert state["status"] == "finished" and state["step"] == 12
    rows = rf.read_jsonl(run / rf.METRICS)
    for key in ("step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "eta_s", "peak_mem_gb"):
        assert key in rows[-1], key
    ls = list(losses(run).values())
    assert sum(ls[-3:]) / 3 < 0.8 * sum(ls[:3]) / 3, ls
    # One plain line per logging step, no escape codes.
    assert "step 12/12" in r.stdout and "\x1b[" not in r.stdout
    # The saved spec repeats the run: it loads as the spec that was run (full fine-tuning has no lora section).
    unused = {"lora"} if method == "full" else set()
    assert specmod.load(run / rf.SPEC).model_dump(exclude=unused) == specmod.load(spec).model_dump(exclude=unused)


def test_interrupt_then_resume_matches_an_uninterrupted_run(tmp_path, bundled_model_dir, identity_jsonl):
    common = dict(method="lora", train={"max_steps": 10, "save_steps": 4, "batch_size": 2, "lr": 1e-3},
                  data={"max_length": 64})
    ref_spec = write_spec(tmp_path / "ref.yaml", bundled_model_dir, identity_jsonl, tmp_path / "ref", name="res",
                          **json.loads(json.dumps(common)))
    r = cli("run", str(ref_spec), "--plain")
    assert r.returncode == 0, r.stderr[-3000:]
    reference = losses(only_run(tmp_path / "ref"))

    spec = write_spec(tmp_path / "spec.yaml", bundled_model_dir, identity_jsonl, tmp_path / "runs", name="res",
                      **json.loads(json.dumps(common)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "wizard", "run", str(spec), "--plain"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    marker = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "runs").glob("res-*/checkpoints/checkpoint-4/.complete"))
        if found:
            marker = found[0]
            proc.send_signal(signal.SIGINT)  # Ctrl-C, as a user would
            break
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=300)
    assert marker is not None, out[-3000:]
    assert proc.returncode == 130, out[-3000:]
    run = only_run(tmp_path / "runs")
    assert json.loads((run / rf.STATE).read_text())["status"] == "interrupted"

    # A half-written newer checkpoint must be ignored.
    (run / rf.CHECKPOINTS / "checkpoint-9").mkdir(exist_ok=True)
    r = cli("run", str(spec), "--plain", "--resume")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "resumed at step 4" in r.stdout
    resumed = losses(run)
    assert sorted(resumed) == sorted(reference) and max(resumed) == 10
    for step, loss in reference.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), (step, resumed, reference)
