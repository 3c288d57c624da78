"""DPO end to end through the real CLI: the shortened demo moves held-out margins; lora and qlora both train;
a run started from an SFT run uses the SFT policy as its reference and continues its adapter."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, cli
from tests.helpers import only_run
from wizard import run_folder as rf

pytestmark = [pytest.mark.slow, pytest.mark.process]

PAIRS = ROOT / "recipes" / "data" / "preference_demo.jsonl"
REWARD_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")



def ok(r) -> None:
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-4000:]


def first_rows(src: Path, dst: Path, n: int) -> Path:
    dst.write_text("".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    return dst


def write_spec(path: Path, model: Path, data: Path, out: Path, task: str = "dpo", method: str = "lora",
               adapter: str | None = None, name: str = "dpo", **train) -> Path:
    spec = {"name": name, "model": {"id": str(model), "hub": "local", **({"adapter": adapter} if adapter else {})},
            "task": task, "method": method,
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
            "data": {"train": [str(data)], "max_length": 128},
            "dpo": {"beta": 0.1, "loss_type": "sigmoid", "max_prompt_length": 64, "max_completion_length": 48},
            "train": {"max_steps": 3, "batch_size": 4, "grad_accum": 1, "lr": 1e-2, "logging_steps": 1,
                      "save_steps": 3, "warmup_ratio": 0.0, "seed": 7, **train},
            "output_dir": str(out)}
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_shortened_demo_raises_the_heldout_margin(tmp_path):
    r = cli("run", "recipes/demo-dpo.yaml", "--plain", "--set", "train.max_steps=4", "--set", "train.batch_size=4",
            "--set", "train.save_steps=4", "--set", f"output_dir={tmp_path / 'runs'}")
    ok(r)
    run = only_run(tmp_path / "runs")
    for f in (rf.SPEC, rf.RUN_INFO, rf.STATE, rf.METRICS, rf.LOG):
        assert (run / f).is_file(), f
    assert (run / rf.ADAPTER / "adapter_model.safetensors").is_file()
    assert not (run / rf.ADAPTER / "ref").exists()
    assert rf.complete_checkpoints(run)
    state = json.loads((run / rf.STATE).read_text())
    assert state["status"] == "finished" and state["step"] == 4
    rows = rf.read_jsonl(run / rf.METRICS)
    train_rows = [r for r in rows if "loss" in r]
    for key in REWARD_KEYS:
        assert key in train_rows[-1], key
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]
    evals = [r for r in rows if "eval_rewards/accuracies" in r]
    assert len(evals) == 1, evals  # the final evaluation, logged once
    assert evals[0]["eval_rewards/accuracies"] > 0.5 and evals[0]["eval_rewards/margins"] > 0
    assert r.stdout.count("[eval] step") == 1, r.stdout[-3000:]
    assert "reference: the base model" in (run / rf.LOG).read_text()
    # The held-out pairs (data.eval) were scored by the run itself: the eval row above is `dpo_eval`'s measure
    # (rewards/margins = beta x (policy margin - reference margin)); heldout_margins is tested on a run folder
    # in test_dpo_from_an_sft_run_uses_it_as_reference_and_continues_it.


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_each_method_trains_on_preference_pairs(tmp_path, tiny_model_dir, method):
    data = first_rows(PAIRS, tmp_path / "pairs.jsonl", 16)
    spec = write_spec(tmp_path / "spec.yaml", tiny_model_dir, data, tmp_path / "runs", method=method)
    v = cli("validate", str(spec))
    ok(v)
    out = " ".join(v.stdout.split())  # the console wraps long lines
    assert "preference pairs: 16;" in out and "pairs cut to fit (incl. data.max_length 128): 0" in out

    ok(cli("run", str(spec), "--plain"))
    run = only_run(tmp_path / "runs")
    rows = [r for r in rf.read_jsonl(run / rf.METRICS) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in REWARD_KEYS:
        assert all(key in r for r in rows), key
    # Step 1 is scored before any update: policy and reference are the same model.
    assert rows[0]["rewards/margins"] == 0.0
    assert rows[-1]["rewards/margins"] > 0, rows
    assert (run / rf.ADAPTER / "adapter_model.safetensors").is_file()
    assert json.loads((run / rf.STATE).read_text())["status"] == "finished"


def test_dpo_from_an_sft_run_uses_it_as_reference_and_continues_it(tmp_path, tiny_model_dir):
    from wizard.engine.dpo_eval import heldout_margins, load_run, sequence_logps

    cognition = ROOT / "recipes" / "data" / "self_cognition.jsonl"
    sft_data = first_rows(cognition, tmp_path / "sft.jsonl", 16)
    sft_spec = write_spec(tmp_path / "sft.yaml", tiny_model_dir, sft_data, tmp_path / "sft", task="sft", name="sft")
    ok(cli("run", str(sft_spec), "--plain"))
    sft_run = only_run(tmp_path / "sft")
    sft_weights = adapter_tensors(sft_run / rf.ADAPTER)
    assert any(t.abs().max() > 0 for k, t in sft_weights.items() if "lora_B" in k), "the SFT adapter is still zero"

    pairs = first_rows(PAIRS, tmp_path / "pairs.jsonl", 12)
    spec = write_spec(tmp_path / "dpo.yaml", tiny_model_dir, pairs, tmp_path / "runs", adapter=str(sft_run),
                      max_steps=2, save_steps=2)
    ok(cli("run", str(spec), "--plain"))
    run = only_run(tmp_path / "runs")
    assert "reference: the SFT policy" in (run / rf.LOG).read_text()
    rows = [r for r in rf.read_jsonl(run / rf.METRICS) if "loss" in r]
    # Were the reference the base model, the SFT adapter alone would make these non-zero at step 1.
    assert rows[0]["rewards/chosen"] == 0.0 and rows[0]["rewards/rejected"] == 0.0, rows[0]
    for key in REWARD_KEYS:
        assert key in rows[-1], key

    # The run's adapter is the SFT adapter trained further: same tensors, moved; no reference copy saved.
    dpo_weights = adapter_tensors(run / rf.ADAPTER)
    assert dpo_weights.keys() == sft_weights.keys()
    assert any(not dpo_weights[k].equal(sft_weights[k]) for k in dpo_weights)
    assert not (run / rf.ADAPTER / "ref").exists()
    for ckpt in rf.complete_checkpoints(run):
        assert not (ckpt / "ref").exists()

    # heldout_margins measures against the same reference: the SFT policy, not the base.
    from wizard.data.load import load_examples
    from wizard.spec import DataSpec

    examples, _, _ = load_examples(DataSpec(train=[str(pairs)]), task="dpo")
    m = heldout_margins(run, examples)  # from the run folder, as `python -m wizard.engine.dpo_eval RUN FILE` does
    model, tokenizer = load_run(run)
    with model.disable_adapter():
        base_chosen, base_rejected = sequence_logps(model, tokenizer, examples)
    assert m["n"] == 12
    assert abs(m["reference_margin"] - (base_chosen - base_rejected).mean().item()) > 1e-3, m
