"""Rebuilding the dashboard state from a run folder's real files, as `watch` does."""
from __future__ import annotations

import json
import time

from wizard import run_folder as rf
from wizard.monitor.state import DashboardState, RunFolderFollower, parse_log_line, to_epoch


def _folder(tmp_path):
    (tmp_path / rf.SPEC).write_text("version: 1\nname: spec-name\nmodel: {id: tiny-llama}\ntask: sft\nmethod: lora\n")
    rf.write_json_atomic(tmp_path / rf.RUN_INFO, {"seed": 1})
    return tmp_path


def test_spec_gives_the_header_before_state_json_exists(tmp_path):
    st = RunFolderFollower(_folder(tmp_path)).poll()
    assert (st.name, st.model, st.task, st.method) == ("spec-name", "tiny-llama", "sft", "lora")
    assert st.steps == [] and st.system is not None and st.gpu_reason  # CPU/RAM of this machine instead


def test_follower_reads_appended_rows_and_waits_for_half_written_lines(tmp_path):
    d = _folder(tmp_path)
    writer = rf.take_lock(d)  # this test writes the run, as the engine would: it holds the folder's lock
    f = RunFolderFollower(d)
    rf.write_json_atomic(d / rf.STATE, {"status": "running", "name": "n", "model": "m", "task": "sft",
                                        "method": "lora", "step": 1, "total_steps": 10,
                                        "started_at": "2025-01-01T12:00:00", "updated_at": time.time()})
    with open(d / rf.METRICS, "w") as fh:
        fh.write(json.dumps({"step": 1, "loss": 2.0, "elapsed_s": 1.0}) + "\n")
        fh.write('{"step": 2, "loss": 1.')  # the engine is still writing this line
    st = f.poll()
    assert st.steps == [1.0] and st.total_steps == 10 and st.status == "running"
    with open(d / rf.METRICS, "a") as fh:
        fh.write('5}\n' + json.dumps({"step": 2, "eval_loss": 1.7}) + "\n")
    st = f.poll()
    assert st.steps == [1.0, 2.0] and st.losses == [2.0, 1.5] and st.evals == [(2.0, 1.7)]
    assert [r["step"] for r in f.new_rows] == [2, 2]
    assert f.poll().steps == [1.0, 2.0]  # nothing new: nothing added twice
    writer.release()


def test_a_live_status_whose_writer_is_gone_reads_as_stopped(tmp_path):
    d = _folder(tmp_path)
    writer = rf.take_lock(d)
    rf.write_json_atomic(d / rf.STATE, {"status": "running", "step": 3, "pid": 999999999})
    assert rf.writer_alive(d) and rf.read_state(d)["status"] == "running"
    assert RunFolderFollower(d).poll().status == "running"
    writer.release()  # what the OS does when the process dies, even of kill -9
    state = rf.read_state(d)
    assert state["status"] == "stopped" and state["step"] == 3
    assert state["message"].startswith("stopped (process gone): pid 999999999 ended without recording how")
    st = RunFolderFollower(d).poll()
    assert st.status == "stopped" and st.done and "process gone" in st.message
    # A run that ended on its own is read as it ended, lock or not.
    rf.write_json_atomic(d / rf.STATE, {"status": "finished", "step": 3})
    assert rf.read_state(d)["status"] == "finished"


def test_truncated_metrics_are_read_again_from_the_start(tmp_path):
    d = _folder(tmp_path)
    f = RunFolderFollower(d)
    (d / rf.METRICS).write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 6)))
    f.poll()
    (d / rf.METRICS).write_text(json.dumps({"step": 1, "loss": 3.0}) + "\n")  # a restarted run
    assert f.poll().losses[-1] == 3.0


def test_gpu_rows_and_the_unavailable_row(tmp_path):
    d = _folder(tmp_path)
    rf.append_jsonl(d / rf.GPU, {"time": 1.0, "gpus": [], "unavailable": "NVML unavailable: test"})
    f = RunFolderFollower(d)
    st = f.poll()
    assert st.gpus == [] and st.gpu_reason == "NVML unavailable: test"
    rf.append_jsonl(d / rf.GPU, {"time": 2.0, "gpus": [{"index": 0, "name": "G", "util": 50, "mem_used_gb": 2.0,
                                                       "mem_total_gb": 8.0}]})
    st = f.poll()
    assert st.gpus[0]["name"] == "G" and st.gpu_reason is None
    assert list(st.gpu_hist[0]["util"]) == [50] and list(st.gpu_hist[0]["mem"]) == [25.0]


def test_train_log_lines_become_events_and_step_lines_are_left_to_the_chart(tmp_path):
    d = _folder(tmp_path)
    (d / rf.LOG).write_text(
        "2025-01-01 12:00:00,001 INFO wizard.run: loading model\n"
        "2025-01-01 12:00:01,001 INFO wizard.run: step 5/40  epoch 0.12  loss 1.0000\n"
        "2025-01-01 12:00:02,001 WARNING transformers.trainer: something odd\n"
        "2025-01-01 12:00:03,001 ERROR wizard.run: Traceback (most recent call last):\n"
        '  File "x.py", line 1\n')
    st = RunFolderFollower(d).poll()
    assert [(e.level, e.text) for e in st.events] == [
        ("info", "loading model"), ("warning", "something odd"), ("error", "Traceback (most recent call last):"),
        ("error", '  File "x.py", line 1')]


def test_finished_state_file_gives_the_summary(tmp_path):
    d = _folder(tmp_path)
    rf.write_json_atomic(d / rf.STATE, {"status": "failed", "message": "out of memory", "final_loss": 1.2,
                                        "elapsed_s": 30, "next_commands": ["tune-wizard estimate spec.yaml"]})
    st = RunFolderFollower(d).poll()
    assert st.done and st.status == "failed" and st.message == "out of memory"
    assert st.final_loss() == 1.2 and st.elapsed() == 30 and st.eta() is None


def test_helpers():
    assert parse_log_line("2025-01-01 12:00:00,1 INFO wizard.run: [eval] step 5  eval_loss 1.0") is None
    assert parse_log_line("warning: disk almost full")[1:] == ("warning", "warning: disk almost full")
    assert to_epoch(12.5) == 12.5 and to_epoch("nonsense") is None
    assert abs(to_epoch("2025-01-01T00:00:00Z") - 1735689600.0) < 1e-6
    st = DashboardState()
    st.add_event("two\nlines", "warning")
    assert [e.text for e in st.events] == ["two", "lines"]
