"""RunLifecycle writes how a run ended, once, and releases what it owns: real run folders, a real sampler
thread, a real SIGINT; and one training run starts one sampler, which its dashboard draws."""
from __future__ import annotations

import io
import json
import logging
import os
import signal
import threading
import time

import pytest
import torch
from rich.console import Console

from tests.helpers import FixedGpuReader, write_spec
from wizard import run_folder as rf
from wizard.engine.lifecycle import OOM_HINT, RunLifecycle
from wizard.monitor.live import LiveReporter
from wizard.monitor.nvml import Sampler
from wizard.monitor.reporting import Reporter

IDENTITY = {"name": "life", "model": "tiny-llama", "task": "sft", "method": "lora"}


class Recorder(Reporter):
    """Records each end it is told and what state.json held at that moment."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.events: list[str] = []
        self.ends: list[tuple[dict, bytes]] = []
        self.closed = 0

    def on_event(self, text, level="info"):
        self.events.append(text)

    def on_end(self, state):
        self.ends.append((dict(state), (self.run_dir / rf.STATE).read_bytes()))

    def close(self):
        self.closed += 1


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "life-20250101-000000"
    d.mkdir()
    return d


def lifecycle(run_dir):
    """A RunLifecycle whose sampler is a real sampling thread on a stand-in GPU reader."""
    started = []

    def start(path):
        started.append(Sampler(FixedGpuReader(), path / rf.GPU, period=0.05).start())
        return started[-1]

    rec = Recorder(run_dir)
    return RunLifecycle(run_dir, IDENTITY, reporter=rec, start_sampler=start), rec, started


def check_released(run, rec, started):
    """The end was written once (no write after the reporter heard it) and everything owned was let go."""
    assert len(rec.ends) == 1 and rec.closed == 1
    told, on_disk = rec.ends[0]
    assert (run.run_dir / rf.STATE).read_bytes() == on_disk
    state = json.loads(on_disk)
    assert state == json.loads(json.dumps(told))
    assert len(started) == 1 and not started[0].running and started[0].reader.shut
    assert run.handler.stream is None  # closed
    for name in ("wizard", "transformers", "peft"):
        assert run.handler not in logging.getLogger(name).handlers
    assert len(rf.read_jsonl(run.run_dir / rf.GPU)) >= 1
    return state


def test_a_normal_end_is_finished_with_what_finalize_added(run_dir):
    run, rec, started = lifecycle(run_dir)
    with run:
        assert json.loads((run_dir / rf.STATE).read_text())["status"] == "starting"
        run.event("loading tiny-llama ...")
        run.update(status="running", step=3)
        run.finish(adapter_dir=str(run_dir / rf.ADAPTER), message="life finished")
        assert started[0].running
    state = check_released(run, rec, started)
    assert state["status"] == "finished" and state["message"] == "life finished" and state["step"] == 3
    assert state["adapter_dir"] == str(run_dir / rf.ADAPTER) and state["name"] == "life"
    assert state["ended_at"] >= state["started_at"] and state["elapsed_s"] >= 0
    assert rec.events == ["loading tiny-llama ..."]
    assert "loading tiny-llama ..." in (run_dir / rf.LOG).read_text()


def test_an_exception_is_failed_with_a_one_line_reason_and_the_traceback_in_train_log(run_dir):
    run, rec, started = lifecycle(run_dir)
    with pytest.raises(ValueError), run:
        run.finish(message="never written")  # finalize got this far, then the end failed
        raise ValueError("tokenizer has no pad token\nsecond line of detail")
    state = check_released(run, rec, started)
    assert state["status"] == "failed"
    assert state["message"] == "ValueError: tokenizer has no pad token"
    log = (run_dir / rf.LOG).read_text()
    assert "Traceback" in log and "second line of detail" in log


def test_out_of_memory_fails_with_the_fix(run_dir):
    run, rec, started = lifecycle(run_dir)
    with pytest.raises(torch.OutOfMemoryError), run:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    state = check_released(run, rec, started)
    assert state["status"] == "failed"
    assert state["message"] == f"OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB — {OOM_HINT}"
    assert "tune-wizard estimate" in state["message"]


def test_out_of_memory_gives_the_specs_estimate_when_there_is_one(run_dir):
    run, rec, started = lifecycle(run_dir)
    run._oom_advice = lambda: "the estimate for this spec is 30.1 GiB of the GPU's 24.0 GiB; the change that fits: X"
    with pytest.raises(torch.OutOfMemoryError), run:
        raise torch.OutOfMemoryError("CUDA out of memory.")
    assert check_released(run, rec, started)["message"] == ("OutOfMemoryError: CUDA out of memory. — the estimate "
                                                            "for this spec is 30.1 GiB of the GPU's 24.0 GiB; the "
                                                            "change that fits: X")
    run, rec, started = lifecycle(run_dir)
    run._oom_advice = lambda: 1 / 0  # advice that fails must not hide the failure
    with pytest.raises(torch.OutOfMemoryError), run:
        raise torch.OutOfMemoryError("CUDA out of memory.")
    assert check_released(run, rec, started)["message"].endswith(OOM_HINT)


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device", "/runs/r/metrics.jsonl"),
                                 RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                              "message: \"No space left on device\" })")])
def test_a_full_disk_fails_naming_what_it_wrote_and_the_fix(run_dir, exc):
    run, rec, started = lifecycle(run_dir)
    with pytest.raises(type(exc)), run:
        run.writing = run_dir / "checkpoints" / "checkpoint-8"
        raise exc
    message = check_released(run, rec, started)["message"]
    where = exc.filename if isinstance(exc, OSError) else run_dir / "checkpoints" / "checkpoint-8"
    assert message.startswith(f"{type(exc).__name__}: No space left on device writing {where} — free space"), message


@pytest.mark.parametrize("checkpointed", [False, True])
def test_ctrl_c_is_interrupted_and_says_whether_resume_can_continue(run_dir, checkpointed):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default KeyboardInterrupt here")
    if checkpointed:
        ckpt = run_dir / rf.CHECKPOINTS / "checkpoint-4"
        ckpt.mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text("{}")
        (ckpt / rf.COMPLETE).write_text("1\n")
    run, rec, started = lifecycle(run_dir)
    with pytest.raises(KeyboardInterrupt), run:
        run.update(status="running", step=5)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered to this process
        time.sleep(10)  # interrupted long before this ends
        pytest.fail("no KeyboardInterrupt")
    state = check_released(run, rec, started)
    assert state["status"] == "interrupted" and state["step"] == 5
    if checkpointed:
        assert state["message"] == "interrupted; --resume continues from checkpoint-4"
    else:
        assert "--resume needs one" in state["message"] and "start it again" in state["message"]
    assert "Traceback" not in (run_dir / rf.LOG).read_text()  # an interrupt is not an error


@pytest.mark.parametrize("raised", [None, ValueError("loss is nan")])
def test_a_reporter_that_fails_at_the_end_releases_the_rest_and_hides_no_error(run_dir, raised):
    class Broken(Recorder):
        def on_end(self, state):
            super().on_end(state)
            raise OSError("terminal went away")

    started = []

    def start(path):
        started.append(Sampler(FixedGpuReader(), path / rf.GPU, period=0.05).start())
        return started[-1]

    rec = Broken(run_dir)
    run = RunLifecycle(run_dir, IDENTITY, reporter=rec, start_sampler=start)
    # The run's own error is what the user sees; the reporter's only when the run itself went well.
    with pytest.raises(type(raised) if raised else OSError, match=str(raised or "terminal went away")), run:
        if raised:
            raise raised
    state = check_released(run, rec, started)
    assert state["status"] == ("failed" if raised else "finished")
    assert "terminal went away" in (run_dir / rf.LOG).read_text()


def test_the_reporter_it_makes_gets_its_one_sampler(run_dir, monkeypatch):
    """make_reporter, as `tune-wizard run` passes it, on a real terminal: the dashboard is handed the run's
    sampler and starts none of its own."""
    from functools import partial

    from wizard.monitor.live import make_reporter

    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("TUNE_WIZARD_PLAIN", raising=False)
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", encoding="utf-8") as tty:
            run = RunLifecycle(run_dir, IDENTITY, reporter_factory=partial(make_reporter, stream=tty, plain=False))
            with run:
                assert isinstance(run.reporter, LiveReporter) and run.reporter.sampler is run.sampler
                assert _nvml_threads() == (0 if run.sampler.unavailable_reason else 1)
    finally:
        os.close(master)
    if run.sampler.unavailable_reason is not None:  # no NVML here: one "unavailable" row per sampler started
        assert len(rf.read_jsonl(run_dir / rf.GPU)) == 1
    assert _nvml_threads() == 0
    assert json.loads((run_dir / rf.STATE).read_text())["status"] == "finished"


def test_resume_accepts_a_longer_run_but_not_other_hyperparameters(tmp_path, identity_jsonl):
    """What `--resume` compares is what the run folder's spec.yaml holds, less how long and how often."""
    from wizard.engine.runner import same_run
    from wizard.spec import load, yaml_writer

    base = load(write_spec(tmp_path / "a.yaml", "some/model", identity_jsonl, tmp_path / "runs"))
    longer = load(write_spec(tmp_path / "b.yaml", "some/model", identity_jsonl, tmp_path / "runs",
                             train={"max_steps": 40, "save_steps": 10}))
    other_lr = load(write_spec(tmp_path / "c.yaml", "some/model", identity_jsonl, tmp_path / "runs",
                               train={"lr": 1e-4}))
    unread = base.model_copy(update={"dpo": base.dpo.model_copy(update={"beta": 0.5})})  # SFT never reads dpo
    saved = load(yaml_writer.write(base, tmp_path / "run" / rf.SPEC, header="resolved spec"))
    assert same_run(saved, base) and same_run(saved, longer) and same_run(saved, unread)
    assert not same_run(saved, other_lr)


def _nvml_threads() -> int:
    return sum(t.name == "tune-wizard-nvml" and t.is_alive() for t in threading.enumerate())


@pytest.mark.slow
def test_one_run_starts_one_sampler_and_its_dashboard_draws_that_sampler(tmp_path, tiny_model_dir, identity_jsonl):
    """train() end to end on a tiny model, with the live dashboard make_reporter would pick on a terminal."""
    from wizard.engine.runner import train
    from wizard.spec import load

    spec = load(write_spec(tmp_path / "spec.yaml", tiny_model_dir, identity_jsonl, tmp_path / "runs",
                           train={"max_steps": 2, "save_steps": 2}))
    made: list[tuple[object, LiveReporter]] = []
    threads_seen: list[int] = []

    def factory(run_dir, sampler):
        sampler.add_listener(lambda row: threads_seen.append(_nvml_threads()))  # NVML: count while it runs
        console = Console(file=io.StringIO(), force_terminal=True, width=100, height=30)
        made.append((sampler, LiveReporter(run_dir, console, sampler=sampler, refresh_per_second=20)))
        return made[-1][1]

    run_dir = train(spec, reporter_factory=factory)
    assert len(made) == 1
    sampler, rep = made[0]
    assert rep.sampler is sampler and rep.state.done and rep.state.status == "finished"
    assert not sampler.running and _nvml_threads() == 0
    rows = rf.read_jsonl(run_dir / rf.GPU)
    if sampler.unavailable_reason is not None:  # this machine: no NVML, one "unavailable" row per start
        assert [r.get("unavailable") for r in rows] == [sampler.unavailable_reason]
        assert rep.state.gpu_reason == sampler.unavailable_reason
    else:
        assert threads_seen and set(threads_seen) == {1}
    state = json.loads((run_dir / rf.STATE).read_text())
    assert state["status"] == "finished" and state["step"] == 2
    assert (run_dir / rf.SPEC).read_text().startswith(f"# resolved spec of run {run_dir.name}\n")
