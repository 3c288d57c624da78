"""Runs that tell the truth, through real processes and signals: one writer per run folder, SIGTERM saves and
stops, kill -9 at any point (loading, a step, a checkpoint save, the final write) reads as stopped and --resume
reproduces the uninterrupted losses, a finished run is not trained "further" by accident, and a disk that
refuses a write fails the run with the path and no checkpoint that --resume would trust."""
from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli
from tests.helpers import losses, only_run, write_spec
from wizard import run_folder as rf
from wizard.monitor.state import RunFolderFollower

pytestmark = [pytest.mark.slow, pytest.mark.process]

STEPS, SAVE_EVERY = 12, 4
# Full fine-tuning: its checkpoints (weights and optimizer states) take long enough to write that a kill can
# land inside one.
FAULT_SPEC = dict(method="full", train={"max_steps": STEPS, "save_steps": SAVE_EVERY, "batch_size": 2, "lr": 3e-2},
                  data={"max_length": 64})




def start(spec: Path, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "wizard", "run", str(spec), "--plain", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def wait_for(proc: subprocess.Popen, condition, timeout: float = 600, every: float = 0.002):
    """Poll CONDITION() until it returns something truthy (returned) or the process ends (None)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        got = condition()
        if got:
            return got
        time.sleep(every)
    return None


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir, identity_jsonl):
    """(spec path, run folder) of the uninterrupted fault-test run."""
    root = tmp_path_factory.mktemp("reference")
    spec = write_spec(root / "spec.yaml", tiny_model_dir, identity_jsonl, root / "runs", name="faults",
                      **json.loads(json.dumps(FAULT_SPEC)))
    r = cli("run", str(spec), "--plain")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return spec, only_run(root / "runs")


# -- kill -9 at a point of the run, chosen by a seed ---------------------------------------------------------

def _loading(runs: Path):
    run = next(runs.glob("faults-*"), None)
    return run if run and (run / rf.STATE).is_file() and not (run / rf.METRICS).is_file() else None


def _at_step(step: int):
    def condition(runs: Path):
        run = next(runs.glob("faults-*"), None)
        return run if run and any(r.get("step", 0) >= step for r in rf.read_jsonl(run / rf.METRICS)) else None
    return condition


def _saving(step: int):
    def condition(runs: Path):
        ckpt = next(runs.glob(f"faults-*/{rf.CHECKPOINTS}/checkpoint-{step}"), None)
        return ckpt.parent.parent if ckpt and not (ckpt / rf.COMPLETE).exists() else None
    return condition


def _final_write(runs: Path):
    """While the adapter is written (or, when that was too quick to catch, the loss plot after it)."""
    run = next(runs.glob("faults-*"), None)
    if run and ((run / rf.ADAPTER_PARTIAL).exists() or (run / rf.ADAPTER).exists()):
        return run if (rf.read_json(run / rf.STATE) or {}).get("status") != "finished" else None
    return None


@pytest.mark.parametrize("point,seed", [("load", 0), ("step", 1), ("save", 2), ("final", 3)])
def test_kill_9_reads_as_stopped_and_resume_reproduces_the_losses(point, seed, reference, tmp_path):
    ref_spec, ref_run = reference
    rng = random.Random(seed)
    # A step or a save past the first checkpoint, so that there is one to resume from (a kill while loading
    # leaves none: that --resume is refused is checked too).
    condition = {"load": _loading, "step": _at_step(rng.randint(SAVE_EVERY + 1, STEPS - 1)),
                 "save": _saving(SAVE_EVERY * rng.randint(2, STEPS // SAVE_EVERY - 1)), "final": _final_write}[point]
    spec = tmp_path / "spec.yaml"
    spec.write_text(ref_spec.read_text().replace(str(ref_run.parent), str(tmp_path / "runs")))
    proc = start(spec)
    run = wait_for(proc, lambda: condition(tmp_path / "runs"))
    proc.kill()
    out, _ = proc.communicate(timeout=60)
    assert run is not None, f"the run ended before the {point} point: " + out[-2000:]
    assert proc.returncode == -signal.SIGKILL

    # Nothing could write the run's end; readers see that its process is gone, not a run that still trains.
    assert json.loads((run / rf.STATE).read_text())["status"] in rf.LIVE
    state = rf.read_state(run)
    assert state["status"] == "stopped" and "process gone" in state["message"], state
    assert RunFolderFollower(run).poll().status == "stopped"

    r = cli("run", str(spec), "--plain", "--resume")
    if point == "load":
        assert not rf.complete_checkpoints(run)
        assert r.returncode == 2 and "has a complete checkpoint" in r.stderr and "start it without" in r.stderr, r.stderr
        return
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert rf.read_state(run)["status"] == "finished"
    want, got = losses(ref_run), losses(run)
    assert sorted(got) == sorted(want) == list(range(1, STEPS + 1))
    for step, loss in want.items():
        assert got[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), (step, got, want)


def test_resuming_a_finished_run_is_refused_until_it_may_train_further(reference, tmp_path):
    ref_spec, ref_run = reference
    adapter = ref_run / rf.ADAPTER / "model.safetensors"
    before = adapter.stat().st_mtime_ns
    r = cli("run", str(ref_spec), "--plain", "--resume")
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"already finished (step {STEPS})" in r.stderr and f"--set train.max_steps={2 * STEPS}" in r.stderr
    assert adapter.stat().st_mtime_ns == before and json.loads((ref_run / rf.STATE).read_text())["step"] == STEPS

    # Another module's tests read the reference run: train a copy of it further.
    import shutil

    copy = tmp_path / "runs" / ref_run.name
    shutil.copytree(ref_run, copy)
    r = cli("run", str(ref_spec), "--plain", "--resume", str(copy), "--set", f"train.max_steps={STEPS + 4}")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"resumed at step {STEPS}" in r.stdout
    state = json.loads((copy / rf.STATE).read_text())
    assert state["status"] == "finished" and state["step"] == STEPS + 4
    assert max(losses(copy)) == STEPS + 4


def test_ctrl_c_while_the_model_loads_ends_the_run_interrupted_at_once(reference, tmp_path):
    ref_spec, ref_run = reference
    spec = tmp_path / "spec.yaml"
    spec.write_text(ref_spec.read_text().replace(str(ref_run.parent), str(tmp_path / "runs")))
    proc = start(spec)
    run = wait_for(proc, lambda: _loading(tmp_path / "runs"))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert run is not None, out[-2000:]
    assert proc.returncode == 130, out[-3000:]
    state = rf.read_state(run)
    assert state["status"] == "interrupted" and state["signal"] == "SIGINT", state
    assert state["message"] == ("stopped by SIGINT before the first complete checkpoint; --resume needs one, so "
                                "start it again")


# -- one writer, SIGTERM -------------------------------------------------------------------------------------

def test_one_writer_per_run_folder_and_sigterm_saves_then_stops(tmp_path, tiny_model_dir, identity_jsonl):
    spec = write_spec(tmp_path / "spec.yaml", tiny_model_dir, identity_jsonl, tmp_path / "runs", name="long",
                      method="lora", train={"max_steps": 100000, "save_steps": 2, "batch_size": 2},
                      data={"max_length": 64})
    first = start(spec)
    try:
        assert wait_for(first, lambda: list((tmp_path / "runs").glob("long-*/checkpoints/checkpoint-2/.complete")),
                        every=0.05), first.communicate(timeout=30)[0][-2000:]
        # A second process may not write the same folder: refused with the live one's pid, nothing written.
        run = only_run(tmp_path / "runs")
        rows_before = len(rf.read_jsonl(run / rf.METRICS))
        r = cli("run", str(spec), "--plain", "--resume")
        assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
        assert f"process {first.pid} is training this run now" in r.stderr and "kill -TERM" in r.stderr
        assert first.poll() is None

        first.send_signal(signal.SIGTERM)  # docker stop, systemd, Slurm preemption
        t0 = time.time()
        out, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143, out[-3000:]
    assert time.time() - t0 < 60
    steps = [r["step"] for r in rf.read_jsonl(run / rf.METRICS)]
    assert steps == sorted(set(steps)) and len(steps) >= rows_before, steps  # one writer: no interleaved rows
    state = rf.read_state(run)
    newest = rf.complete_checkpoints(run)[-1]
    assert state["status"] == "interrupted" and state["signal"] == "SIGTERM", state
    assert newest.name == f"checkpoint-{steps[-1]}", (newest, steps[-1])
    assert state["message"] == f"stopped by SIGTERM; --resume continues from {newest.name}"
    assert "SIGTERM: stopping after step" in (run / rf.LOG).read_text()


# -- a disk that refuses writes ------------------------------------------------------------------------------

def _file_size_limit(limit: int):
    def apply():  # in the child: writes past LIMIT bytes fail with EFBIG instead of killing it with SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_write_the_disk_refuses_fails_the_run_with_the_path_and_no_trusted_checkpoint(tmp_path, tiny_model_dir,
                                                                                        identity_jsonl):
    # The tiny model's weights alone are ~13 MB: its first checkpoint cannot be written under a 4 MB file limit.
    spec = write_spec(tmp_path / "spec.yaml", tiny_model_dir, identity_jsonl, tmp_path / "runs", name="disk",
                      **json.loads(json.dumps(FAULT_SPEC)))
    proc = start(spec, preexec_fn=_file_size_limit(4 * 2**20))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out[-3000:]
    run = only_run(tmp_path / "runs")
    state = json.loads((run / rf.STATE).read_text())
    assert state["status"] == "failed", state
    assert "File too large writing" in state["message"] and "checkpoint-4" in state["message"], state["message"]
    assert "free space on that disk" in state["message"]
    assert rf.complete_checkpoints(run) == [] and (run / rf.CHECKPOINTS / "checkpoint-4").is_dir()
    assert rf.read_json(run / rf.RUN_INFO) and (run / rf.SPEC).read_text().startswith("#")


def test_a_bad_output_dir_is_refused_before_anything_is_made(tmp_path, tiny_model_dir, identity_jsonl):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    spec = write_spec(tmp_path / "spec.yaml", tiny_model_dir, identity_jsonl, blocker / "runs")
    r = cli("run", str(spec), "--plain")
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"output_dir '{blocker / 'runs'}': cannot write there" in r.stderr and "fix: set output_dir" in r.stderr
    assert blocker.read_text() == "not a folder"
