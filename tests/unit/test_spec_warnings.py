"""Legal but almost surely wrong values (wizard.spec.warnings): each rule at its edge, the facts found for a
real spec (wizard.init.sanity), the wizard's keep / change, and `tune-wizard validate` printing the same
warnings with exit 0."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import chat_rows
from tests.unit.test_init_flow import CLEAR, DOWN, WRITE, offline, wizard, wizard_keys  # noqa: F401
from wizard import spec as specmod
from wizard.estimate import shape_for_model
from wizard.init.sanity import adapter_base, facts_for
from wizard.spec.warnings import Facts, check


def spec_of(**over) -> specmod.RunSpec:
    d = {"model": {"id": "smollm2-135m-instruct"}, "task": "sft", "method": "lora", "data": {"train": ["x.jsonl"]}}
    for path, value in over.items():
        section, _, key = path.partition("__")
        if key:
            d.setdefault(section, {})[key] = value
        else:
            d[section] = value
    return specmod.from_dict(d, source="test")


def fields_warned(spec, facts: Facts) -> list[str]:
    return [w.field for w in check(spec, facts)]


@pytest.mark.parametrize(("over", "facts", "warned"), [
    ({"train__lr": 0.0099}, Facts(), []),
    ({"train__lr": 0.01}, Facts(), ["train.lr"]),
    ({"train__lr": 0.5}, Facts(), ["train.lr"]),
    ({"train__lr": 5e-4, "method": "full"}, Facts(), []),
    ({"train__lr": 1e-3, "method": "full"}, Facts(), ["train.lr"]),
    ({"data__max_length": 8192}, Facts(context=8192), []),
    ({"data__max_length": 8193}, Facts(context=8192), ["data.max_length"]),
    ({"data__max_length": 99999}, Facts(), []),  # the context unknown: no word
    ({"lora__target_modules": ["q_proj", "qproj"]}, Facts(modules=frozenset({"q_proj", "v_proj"})),
     ["lora.target_modules"]),
    ({"lora__target_modules": ["q_proj"]}, Facts(modules=frozenset({"q_proj", "v_proj"})), []),
    ({"lora__target_modules": "all-linear"}, Facts(modules=frozenset({"q_proj"})), []),
    ({"train__optimizer": "paged_adamw_8bit"}, Facts(cuda=False), ["train.optimizer"]),
    ({"train__optimizer": "paged_adamw_8bit"}, Facts(cuda=True), []),
    ({"train__optimizer": "adamw_torch"}, Facts(cuda=False), []),
    ({"data__eval_split": 0.9}, Facts(), ["data.eval_split"]),
    ({"data__eval_split": 0.5}, Facts(rows=100, eval_rows=50), []),
    ({"data__eval_split": 0.2}, Facts(rows=19, eval_rows=4), ["data.eval_split"]),
    ({"data__eval_split": 0.1}, Facts(rows=100, eval_rows=10), []),
])
def test_each_rule_at_its_edge(over, facts, warned):
    assert fields_warned(spec_of(**over), facts) == warned


def test_the_facts_of_a_real_spec_drive_the_rules():
    spec = spec_of(data__max_length=10000, lora__target_modules=["q_proj", "attn"], data__eval_split=0.2)
    facts = facts_for(spec, shape=shape_for_model("smollm2-135m-instruct"), cuda=False, rows=19)
    assert facts.context == 8192 and {"q_proj", "down_proj", "lm_head"} <= facts.modules and facts.eval_rows == 4
    got = {w.field: str(w) for w in check(spec, facts)}
    assert set(got) == {"lora.target_modules", "data.max_length", "data.eval_split"}
    assert got["data.max_length"].startswith("data.max_length: 10000 is beyond the model's context (8192 tokens)")
    assert "attn: not a layer of this model" in got["lora.target_modules"]
    assert "0.2 of 19 rows leaves 4 eval rows" in got["data.eval_split"]


def test_a_dpo_start_from_run_of_another_model_is_warned(tmp_path):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/cache/x"}))
    (run / "spec.yaml").write_text(yaml.safe_dump({"model": {"id": "Qwen/Qwen2.5-0.5B-Instruct"}}))
    assert adapter_base(str(run)) == adapter_base(str(run / "adapter")) == "qwen2.5-0.5b-instruct"
    dpo = dict(task="dpo", model={"id": "smollm2-135m-instruct", "adapter": str(run)})
    assert fields_warned(spec_of(**dpo), facts_for(spec_of(**dpo))) == ["model.adapter"]
    same = dict(task="dpo", model={"id": "qwen2.5-0.5b-instruct", "adapter": str(run)})
    assert fields_warned(spec_of(**same), facts_for(spec_of(**same))) == []


BASE = {"hub": "demo", "task": "sft-lora", "dataset": "bundled:mix", "use_recommended": True, "output_dir": "runs",
        "name": "x"}


def test_the_wizard_warns_and_change_asks_that_answer_again(tmp_path):
    # lr 0.5 from the answers file: the warning; Change it (down, Enter); the learning rate asked, offering
    # 0.5: 2e-4; the review: Write.
    path, _, screen = wizard_keys(tmp_path, {**BASE, "lr": 0.5}, DOWN + "\r" + CLEAR + "2e-4\r" + WRITE)
    assert "warning: train.lr: 0.5 is far above the usual 1e-05-0.0005 for lora" in screen
    assert specmod.load(path).train.lr == 2e-4


def test_the_wizard_keeps_a_value_on_enter_and_does_not_ask_again(tmp_path):
    path, _, screen = wizard_keys(tmp_path, {**BASE, "lr": 0.5}, "\r" + WRITE)
    assert specmod.load(path).train.lr == 0.5 and screen.count("warning: train.lr") == 1


def test_defaults_print_the_warning_and_write(tmp_path):
    data = chat_rows(tmp_path / "d.jsonl", n=19)
    path, _, screen = wizard(tmp_path, {"hub": "demo", "dataset": str(data), "eval_split": 0.2}, defaults=True)
    assert "warning: data.eval_split: 0.2 of 19 rows leaves 4 eval rows" in screen
    assert specmod.load(path).data.eval_split == 0.2


def test_validate_prints_the_same_warnings_and_exits_0(tmp_path, capsys):
    from wizard.cli import main

    data = chat_rows(tmp_path / "d.jsonl", n=19)
    spec = {"model": {"id": "smollm2-135m-instruct"}, "task": "sft", "method": "lora",
            "lora": {"target_modules": ["q_proj", "qkv"]},
            "data": {"train": [str(data)], "max_length": 9000, "eval_split": 0.2},
            "train": {"lr": 0.5}, "output_dir": str(tmp_path / "runs")}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    assert main(["validate", str(tmp_path / "s.yaml"), "--no-tokens"]) == 0
    out = capsys.readouterr().out
    for line in ("warning: lora.target_modules: qkv: not a layer", "warning: data.max_length: 9000 is beyond",
                 "warning: data.eval_split: 0.2 of 19 rows leaves 4 eval rows", "warning: train.lr: 0.5 is far"):
        assert line in out, out
