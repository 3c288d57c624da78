"""A run on two processes (torchrun, gloo on the CPU) through the real CLI: the same losses as one process with the
same global batch, one run folder, Ctrl-C of the launcher stops both processes at a step boundary with a checkpoint
of that step (every run's SIGINT path: one process runs the same GracefulStop), a half-written checkpoint is
never resumed from, --resume on two processes continues to the same losses, and chat answers with its adapter; a rank that raises brings the run down
within seconds, and the run's state names that rank and its error."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, cli
from tests.helpers import losses, only_run, write_spec
from wizard import run_folder as rf
from wizard.engine.distributed import rank_failures

pytestmark = [pytest.mark.slow, pytest.mark.process]

STEPS = 8
# One process accumulating two passes per update == two processes of one pass each (the update's tokens are the
# same rows: the Trainer hands process r every r-th pass of the one seeded order).
TRAIN = {"max_steps": STEPS, "save_steps": 2, "batch_tokens": 128, "lr": 1e-2}


def _spec(root: Path, model: Path, data: Path, grad_accum: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return write_spec(root / "spec.yaml", model, data, root / "runs", name="dist",
                      train={**TRAIN, "grad_accum": grad_accum})


def _start(spec: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "wizard", "run", str(spec), "--plain", "--gpus", "2", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _workers(launcher: subprocess.Popen) -> list[psutil.Process]:
    """The launcher's training processes (those torchrun gave a RANK)."""
    out = []
    for p in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if "RANK" in p.environ():
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_two_processes_train_like_one_stop_together_and_resume(tmp_path, tiny_model_dir, identity_jsonl):
    one = _spec(tmp_path / "one", tiny_model_dir, identity_jsonl, grad_accum=2)
    r = cli("run", str(one), "--plain")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    reference = losses(only_run(tmp_path / "one" / "runs"))
    assert sorted(reference) == list(range(1, STEPS + 1))

    two = _spec(tmp_path / "two", tiny_model_dir, identity_jsonl, grad_accum=1)
    launcher = _start(two)
    runs = tmp_path / "two" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline and launcher.poll() is None:
        run = next(runs.glob("dist-*"), None)
        if run is not None and len(losses(run)) >= 3:
            break
        time.sleep(0.05)
    workers = _workers(launcher)
    assert len(workers) == 2, "torchrun did not start two training processes"
    launcher.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal sends it
    out, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 130, out[-3000:]
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"training processes left running: {alive}"
    run = only_run(runs)
    state = rf.read_state(run)
    assert state["status"] == "interrupted", state
    stopped_at = state["step"]
    assert 3 <= stopped_at < STEPS, state
    assert rf.complete_checkpoints(run)[-1].name == f"checkpoint-{stopped_at}"
    assert state["signal"] == "SIGINT" and state["message"] == f"stopped by SIGINT; --resume continues from " \
        f"checkpoint-{stopped_at}", state
    assert rf.read_json(run / rf.RUN_INFO)["world_size"] == 2
    (run / rf.CHECKPOINTS / "checkpoint-99").mkdir()  # half-written (no .complete): never resumed from

    resumed = cli("run", str(two), "--plain", "--gpus", "2", "--resume")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert f"resumed at step {stopped_at}" in resumed.stdout
    assert only_run(runs) == run  # one run folder, written by rank 0 alone
    assert rf.read_state(run)["status"] == "finished"
    assert (run / rf.ADAPTER / "adapter_model.safetensors").is_file()
    got = losses(run)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step, loss in reference.items():
        assert abs(got[step] - loss) <= 1e-4 * abs(loss), (step, got[step], loss)
    chat = cli("chat", str(run), "--prompt", "Who are you?", "--max-new-tokens", "4")
    assert chat.returncode == 0 and chat.stdout.strip(), chat.stdout[-2000:] + chat.stderr[-2000:]


FAULT = '''
import os
if os.environ.get("RANK") == "1":
    import transformers
    _step = transformers.Trainer.training_step
    _calls = [0]
    def _failing(self, *args, **kwargs):
        _calls[0] += 1
        if _calls[0] == 3:
            raise RuntimeError("disk controller fault on rank 1")
        return _step(self, *args, **kwargs)
    transformers.Trainer.training_step = _failing
'''


def test_a_rank_that_raises_ends_the_run_and_is_named(tmp_path, tiny_model_dir, identity_jsonl):
    # A fault in rank 1 only, put in through Python's sitecustomize hook (the engine is untouched).
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAULT, encoding="utf-8")
    spec = _spec(tmp_path, tiny_model_dir, identity_jsonl, grad_accum=1)
    launcher = _start(spec, "--set", "train.max_steps=200", env={"PYTHONPATH": str(hook)})
    out, _ = launcher.communicate(timeout=300)
    ended = time.time()
    assert launcher.returncode == 1, out[-3000:]
    run = only_run(tmp_path / "runs")
    first = rank_failures(run)[0]
    assert first["rank"] == 1 and "disk controller fault on rank 1" in first["reason"]
    assert ended - first["time"] < 30, f"the launcher took {ended - first['time']:.0f} s to end after the fault"
    state = rf.read_state(run)
    assert state["status"] == "failed"
    assert state["message"].startswith("rank 1 failed: RuntimeError: disk controller fault on rank 1"), state
    assert "rank 1 failed: RuntimeError: disk controller fault on rank 1" in out
    log = (run / rf.LOG).read_text(encoding="utf-8")
    assert "[rank 1]" in log and "disk controller fault on rank 1" in log
