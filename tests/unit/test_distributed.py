"""Runs on several processes, in process: the spec section, the batching and memory per process, DDP or FSDP,
torchrun's command line, and how the launcher reads a run's end (real run folders, real locks)."""
from __future__ import annotations

import json
import time

import pytest

from tests.helpers import chat_rows
from wizard import run_folder as rf
from wizard import spec as specmod
from wizard.cli import main
from wizard.engine import distributed
from wizard.engine.launch import Nodes, outcome, torchrun_argv
from wizard.errors import SpecError
from wizard.estimate import estimate, shape_for_model
from wizard.estimate.batching import UPDATE_TOKENS, plan
from wizard.estimate.strategy import choose, processes
from wizard.hardware import GpuInfo, Hardware
from wizard.spec import yaml_writer


def _spec(**over):
    raw = {"model": {"id": "qwen2.5-7b-instruct"}, "data": {"train": ["d.jsonl"]}, **over}
    return specmod.from_dict(raw)


def _gpu_machine(gb: float, count: int = 2) -> Hardware:
    gpus = [GpuInfo(index=i, name="test GPU", total_gb=gb, free_gb=gb, bf16=True, compute_capability=(9, 0))
            for i in range(count)]
    return Hardware(gpus=gpus, cpu_count=16, ram_total_gb=256, ram_available_gb=200, cpu_bf16=True,
                    cuda_available=True)


def test_the_section_is_written_only_when_it_says_more_than_one_process():
    assert "distributed" not in yaml_writer.render(_spec())
    text = yaml_writer.render(_spec(distributed={"gpus": 2, "strategy": "fsdp"}))
    assert "distributed:" in text and "gpus: 2" in text and "strategy: fsdp" in text
    assert _spec(distributed={"gpus": "all"}).distributed.gpus == "all"
    with pytest.raises(SpecError, match="distributed.gpus"):
        _spec(distributed={"gpus": 0})


def test_an_update_holds_the_same_tokens_on_one_or_several_processes():
    one = plan("tokens", 4096, "auto", max_length=2048)
    two = plan("tokens", 4096, "auto", max_length=2048, processes=2)
    assert one.grad_accum * 4096 == UPDATE_TOKENS == two.grad_accum * 4096 * 2
    assert "on each of 2 processes" in two.describe() and f"~{UPDATE_TOKENS:,} tokens" in two.describe()
    rows = plan("rows", "auto", "auto", max_length=512, batch_size=2, processes=4)
    assert rows.grad_accum == 2  # 16 rows an update: 2 rows x 2 passes x 4 processes


def test_fsdp_splits_what_is_kept_per_gpu_and_gathers_a_layer_at_a_time():
    s = shape_for_model("qwen2.5-7b-instruct")
    one = estimate(s, method="full", max_length=1024)
    four = estimate(s, method="full", max_length=1024, shards=4)
    for part in ("weights", "gradients", "optimizer"):
        assert four.parts[part] == pytest.approx(one.parts[part] / 4)
    assert four.parts["activations"] == pytest.approx(one.parts["activations"])
    assert four.parts["transient"] > one.parts["transient"]  # the gathered layers
    assert four.total_gb < one.total_gb / 2


def test_ddp_when_the_model_fits_one_gpu_fsdp_when_it_does_not():
    s = shape_for_model("qwen2.5-7b-instruct")
    assert choose(_spec(method="qlora"), _gpu_machine(80), s, 2)[0] == "ddp"
    strategy, why = choose(_spec(method="full"), _gpu_machine(80), s, 2)
    assert strategy == "fsdp" and "does not fit one GPU" in why and "split over 2 GPUs" in why
    assert choose(_spec(method="full", distributed={"strategy": "ddp"}), _gpu_machine(80), s, 2) == (
        "ddp", "set in the spec")
    assert choose(_spec(method="full"), None, s, 2)[0] == "ddp"  # CPU processes
    assert choose(_spec(), _gpu_machine(80), s, 1)[0] == "single"
    assert choose(_spec(distributed={"strategy": "fsdp"}), _gpu_machine(80), s, 1)[0] == "fsdp"
    assert processes("all", 8) == 8 and processes("all", 0) == 1 and processes(2, 0) == 2


def test_torchrun_is_given_one_machine_or_a_rendezvous():
    argv = torchrun_argv(2, Nodes(), "s.yaml", ["train.lr=1e-4"], resume=None, plain=True, gpu_memory=None,
                         run_name="demo")
    assert argv[:5] == ["--nproc-per-node", "2", "--max-restarts", "0", "--standalone"]
    assert argv[5:] == ["--module", "wizard", "run", "s.yaml", "--set", "train.lr=1e-4", "--plain"]
    multi = torchrun_argv(8, Nodes(2, 1, "node0:29500"), "s.yaml", [], resume="runs/x", plain=False,
                          gpu_memory=40.0, run_name="demo")
    joined = " ".join(multi)
    assert "--nnodes 2 --node-rank 1 --rdzv-backend c10d --rdzv-endpoint node0:29500 --rdzv-id demo" in joined
    assert joined.endswith("--resume runs/x --gpu-memory 40.0")


def _ended_run(tmp_path, **state) -> rf.Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / rf.SPEC).write_text("name: x\n")
    rf.write_json_atomic(run / rf.STATE, {"status": "failed", "pid": 1, **state})
    return run


def test_the_state_names_the_rank_that_failed_first(tmp_path):
    run = _ended_run(tmp_path, message="RuntimeError: Connection closed by peer")
    w1 = distributed.World(rank=1, local_rank=1, size=2)
    distributed.record_failure(run, w1, "ValueError: bad row 7")
    time.sleep(0.01)
    distributed.record_failure(run, distributed.World(rank=0, size=2), "RuntimeError: Connection closed by peer")
    assert outcome(run, 1, {1: "exit status 1"}) == 1
    state = rf.read_json(run / rf.STATE)
    assert state["message"].startswith("rank 1 failed: ValueError: bad row 7"), state


def test_a_rank_killed_without_a_word_is_named_by_how_it_ended(tmp_path):
    run = _ended_run(tmp_path, message="RuntimeError: Connection closed by peer")
    distributed.record_failure(run, distributed.World(rank=0, size=2), "RuntimeError: Connection closed by peer")
    assert outcome(run, 1, {1: "killed by SIGKILL"}) == 1
    message = rf.read_json(run / rf.STATE)["message"]
    assert message.startswith("rank 1 killed by SIGKILL without an error of its own"), message


def test_interrupted_finished_and_never_started_runs(tmp_path):
    run = _ended_run(tmp_path, status="interrupted", signal="SIGTERM", message="stopped by SIGTERM")
    assert outcome(run, 143) == 143
    assert json.loads((run / rf.STATE).read_text())["status"] == "interrupted"
    rf.write_json_atomic(run / rf.STATE, {"status": "finished"})
    assert outcome(run, 0) == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert outcome(empty, 1, {0: "exit status 1"}, made=True) == 1
    assert not empty.exists()  # a folder made for the run that nothing wrote is not left behind


def test_bad_gpu_counts_and_a_rendezvous_without_an_endpoint_are_exit_2(tmp_path, capsys):
    data = chat_rows(tmp_path / "d.jsonl")
    spec = tmp_path / "s.yaml"
    spec.write_text(f"model: {{id: {tmp_path}, hub: local}}\ndata: {{train: [{data}]}}\n")
    assert main(["run", str(spec), "--gpus", "0"]) == 2
    assert "'0': a number of GPUs (1 or more) or 'all'" in capsys.readouterr().err
    assert main(["run", str(spec), "--gpus", "2", "--nnodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "--nnodes 2: the machines need a place to meet" in err and "--rdzv-endpoint HOST:PORT" in err


def test_a_run_resumes_only_on_the_count_it_started_with(tmp_path, tiny_model_dir):
    from wizard.engine.runner import check_before_launch

    data = chat_rows(tmp_path / "d.jsonl")
    spec = specmod.from_dict({"name": "two", "model": {"id": str(tiny_model_dir), "hub": "local"},
                              "data": {"train": [str(data)]}, "output_dir": str(tmp_path / "runs"),
                              "distributed": {"gpus": 2}})
    run = tmp_path / "runs" / "two-20261202-120000"
    ckpt = run / rf.CHECKPOINTS / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    (ckpt / rf.COMPLETE).write_text("")
    yaml_writer.write(spec, run / rf.SPEC)
    rf.write_json_atomic(run / rf.RUN_INFO, {"world_size": 2})
    assert check_before_launch(spec, str(run), 2) == (run, ckpt)
    with pytest.raises(SpecError) as refused:
        check_before_launch(spec, str(run), 3)
    assert "two-20261202-120000 was trained on 2 processes (GPUs); this run has 3" in str(refused.value)
    assert "--gpus 2" in refused.value.hint


def test_the_wizard_asks_for_the_gpus_and_says_ddp_or_fsdp(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from wizard.init import questions as Qs
    from wizard.init.context import Context
    from wizard.init.flow import run_wizard

    monkeypatch.setenv("TUNE_WIZARD_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    ctx = Context(hardware=_gpu_machine(80), cwd=tmp_path, no_start=True)
    q = Qs.BY_ID["gpus"]
    small = {"hub": "huggingface", "model": "qwen2.5-7b-instruct", "task": "sft-qlora"}
    big = {**small, "model": "qwen2.5-32b-instruct", "task": "sft-full"}
    first = Qs.options(q, small, ctx)[0]
    assert (first.value, first.title) == ("2", "all 2 GPUs") and first.help.startswith("ddp: the model fits one GPU")
    sharded = Qs.options(q, big, ctx)[0].help
    assert sharded.startswith("fsdp:") and "split over 2 GPUs" in sharded
    assert [o.value for o in Qs.options(q, small, ctx)] == ["2", "1"]
    assert not q.when(small, Context(hardware=_gpu_machine(80, count=1)))  # one GPU: not asked
    ctx = Context(hardware=_gpu_machine(80), cwd=tmp_path, no_start=True,
                  preset={**small, "dataset": "hub", "dataset_hub": "o/d"})
    path, _ = run_wizard(ctx, Console(file=io.StringIO(), width=120), interactive=False, use_defaults=True,
                         answers_file="lab.yaml")
    assert specmod.load(path).distributed.gpus == 2
