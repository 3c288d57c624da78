"""End to end through the real CLI: qlora, lora and full train a tiny real model; resume is exact."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, cli
from tests.helpers import losses, only_run, write_spec
from wizard import run_folder as rf
from wizard import spec as specmod

pytestmark = [pytest.mark.slow, pytest.mark.process]




@pytest.mark.parametrize("method", ["qlora", "lora", "full"])
def test_each_method_trains_and_fills_the_run_folder(tmp_path, tiny_model_dir, identity_jsonl, method):
    # A tiny model built from a config: every method's path end to end in seconds. That the adapter methods
    # teach the real bundled model is the demo's test (tests/e2e/test_demo.py, QLoRA) and DPO's.
    spec = write_spec(tmp_path / "spec.yaml", tiny_model_dir, identity_jsonl, tmp_path / "runs", method=method,
                      name=f"t-{method}")
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
    if method == "full":
        assert sum(ls[-3:]) / 3 < 0.8 * sum(ls[:3]) / 3, ls
    else:
        # Adapters on a random frozen model move its loss only a little in 12 steps (their effect on the real
        # model is the demo's test); that they trained: the loss fell and every lora_B left its zero start.
        from safetensors.torch import load_file

        assert sum(ls[-3:]) / 3 < sum(ls[:3]) / 3, ls
        b = {k: t for k, t in load_file(str(adapter / "adapter_model.safetensors")).items() if "lora_B" in k}
        assert b and all(t.abs().max() > 0 for t in b.values()), [k for k, t in b.items() if not t.abs().max()]
    # One plain line per logging step, no escape codes.
    assert "step 12/12" in r.stdout and "\x1b[" not in r.stdout
    # The saved spec repeats the run: it loads as the spec that was run (full fine-tuning has no lora section).
    unused = {"lora"} if method == "full" else set()
    assert specmod.load(run / rf.SPEC).model_dump(exclude=unused) == specmod.load(spec).model_dump(exclude=unused)


def test_ctrl_c_saves_at_the_step_boundary_and_resume_matches_an_uninterrupted_run(tmp_path, tiny_model_dir,
                                                                                   identity_jsonl):
    common = dict(method="lora", train={"max_steps": 30, "save_steps": 4, "batch_size": 2, "lr": 1e-3},
                  data={"max_length": 64})
    ref_spec = write_spec(tmp_path / "ref.yaml", tiny_model_dir, identity_jsonl, tmp_path / "ref", name="res",
                          **json.loads(json.dumps(common)))
    r = cli("run", str(ref_spec), "--plain")
    assert r.returncode == 0, r.stderr[-3000:]
    reference = losses(only_run(tmp_path / "ref"))

    spec = write_spec(tmp_path / "spec.yaml", tiny_model_dir, identity_jsonl, tmp_path / "runs", name="res",
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
    # It stopped at the end of the step it was in, with a checkpoint of that step: nothing trained is lost.
    state = json.loads((run / rf.STATE).read_text())
    stopped_at = max(r["step"] for r in rf.read_jsonl(run / rf.METRICS))
    newest = rf.complete_checkpoints(run)[-1]
    assert newest.name == f"checkpoint-{stopped_at}" and 4 <= stopped_at < 30, (newest, stopped_at)
    assert state["status"] == "interrupted" and state["signal"] == "SIGINT", state
    assert state["message"] == f"stopped by SIGINT; --resume continues from {newest.name}"

    # A half-written newer checkpoint must be ignored.
    (run / rf.CHECKPOINTS / "checkpoint-29").mkdir(exist_ok=True)
    r = cli("run", str(spec), "--plain", "--resume")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"resumed at step {stopped_at}" in r.stdout
    resumed = losses(run)
    assert sorted(resumed) == sorted(reference) and max(resumed) == 30
    for step, loss in reference.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), (step, resumed, reference)
