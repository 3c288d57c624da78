"""The wizard's flow in-process (wizard.init.flow.run_wizard): --defaults and an answers mapping, no terminal.

The same flow the pty tests (tests/interactive) and the subprocess tests (test_init_scripted) drive, called
directly, so each way in is checked in well under a second: the written file, every value in it, and the
comment on every field (the field's description from the spec).
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tests.helpers import chat_rows, every_kind_of_answer
from tests.unit.test_questions import yaml_comments
from wizard import spec as specmod
from wizard.catalog import recipes_dir
from wizard.errors import UserError
from wizard.init.context import Context
from wizard.init.flow import run_wizard
from wizard.spec import fields


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNE_WIZARD_OFFLINE", "1")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.chdir(tmp_path)  # the spec is written beside where the wizard runs


def wizard(tmp_path: Path, answers: dict | None = None, *, defaults: bool = False, out: str | None = None):
    """Run the wizard as `tune-wizard init --no-start [--defaults] [--answers lab.yaml]` would; returns
    (the spec file, its text, what was printed)."""
    ctx = Context.probe(cwd=tmp_path, preset=dict(answers or {}), out=Path(out) if out else None, no_start=True)
    buf = io.StringIO()
    console = Console(file=buf, width=120, color_system=None)
    path, start = run_wizard(ctx, console, interactive=False, use_defaults=defaults,
                             answers_file="lab.yaml" if answers is not None else None)
    assert start is False  # --no-start
    return path, path.read_text(encoding="utf-8"), buf.getvalue()


def assert_commented(text: str) -> None:
    comments = yaml_comments(text)
    assert comments, "no fields found"
    for path, comment in comments.items():
        assert comment == fields.description(path), path


def test_defaults_write_the_demo_spec_with_every_field_commented(tmp_path):
    path, text, screen = wizard(tmp_path, defaults=True)
    spec = specmod.load(path)
    # The bundled model and data with the demo recipe's measured settings; the method is the estimate's pick.
    assert spec.task == "sft" and spec.method in ("qlora", "lora")
    assert path == Path(f"smollm2-135m-instruct-sft-{spec.method}.yaml") and spec.name == path.stem
    assert (spec.model.id, spec.model.hub) == ("smollm2-135m-instruct", "auto")
    assert [Path(s.path).name for s in spec.data.train] == ["self_cognition.jsonl", "general_chat.jsonl"]
    demo = specmod.load(recipes_dir() / "demo.yaml")
    assert spec.lora == demo.lora
    for key in ("epochs", "max_steps", "batching", "batch_tokens", "grad_accum", "lr", "scheduler", "warmup_ratio", "optimizer",
                "seed", "logging_steps", "save_steps", "gradient_checkpointing"):
        assert getattr(spec.train, key) == getattr(demo.train, key), key
    assert spec.data.max_length == demo.data.max_length and spec.output_dir == "runs"
    # The header says how to run it; every field line carries its field's description.
    assert text.startswith("# tune-wizard run spec, written by `tune-wizard init`")
    assert f"# Run it:   tune-wizard run ./{path}" in text
    assert_commented(text)
    assert ("quant" in yaml.safe_load(text)) == (spec.method == "qlora")  # sections the run reads, only
    assert f"✓ wrote ./{path}" in screen and "Recommended for sft" in screen and "recipes/demo.yaml" in screen


def test_answers_set_every_kind_of_answer(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = chat_rows(tmp_path / "mine.jsonl")
    answers = every_kind_of_answer(model, data)
    path, text, screen = wizard(tmp_path, answers, out="specs/custom.yaml")
    assert path == Path("specs/custom.yaml")
    spec = specmod.load(path)
    assert spec.model.id == str(model.resolve()) and spec.model.hub == "local"
    assert (spec.task, spec.method) == ("sft", "lora")
    assert Path(spec.data.train[0].path) == data.resolve()
    assert (spec.lora.r, spec.lora.alpha, spec.lora.dropout, spec.lora.target_modules) == (16, 64, 0.1,
                                                                                           ["q_proj", "k_proj"])
    t = spec.train
    assert (t.lr, t.epochs, t.batch_size, t.grad_accum, t.max_steps) == (1e-4, 2, 2, 8, 30)
    assert (t.warmup_ratio, t.weight_decay, t.scheduler, t.optimizer) == (0.1, 0.01, "linear", "adamw_8bit")
    assert (t.save_steps, t.logging_steps, t.gradient_checkpointing, t.seed) == (50, 2, "off", 7)
    assert (spec.data.max_length, spec.data.packing, spec.data.eval_split) == (512, True, 0.2)
    assert spec.output_dir == "out" and spec.name == "custom"
    assert_commented(text)
    assert "format alpaca" in screen and "10 rows" in screen and "(from lab.yaml)" in screen


def test_answers_plus_defaults_for_dpo_write_the_dpo_section(tmp_path):
    answers = {"hub": "demo", "task": "dpo-lora", "dataset": "bundled:preference_demo", "name": "pref"}
    path, text, _ = wizard(tmp_path, answers, defaults=True)
    spec = specmod.load(path)
    assert (spec.task, spec.method, spec.name) == ("dpo", "lora", "pref")
    assert spec.dpo.beta == fields.default("dpo.beta")
    assert spec.train.lr == 5e-5  # the estimator's DPO learning rate
    raw = yaml.safe_load(text)
    assert "dpo" in raw and "quant" not in raw
    assert yaml_comments(text)["dpo.beta"] == fields.description("dpo.beta")
    assert_commented(text)


def test_an_answer_outside_the_fields_bounds_is_refused_with_the_specs_words(tmp_path):
    with pytest.raises(UserError) as e:
        wizard(tmp_path, {"hub": "demo", "task": "sft-lora", "lr": 1.5}, defaults=True)
    assert e.value.problems == ["lab.yaml: lr: Input should be less than 1 (got 1.5)"]
    with pytest.raises(UserError) as e:
        wizard(tmp_path, {"hub": "demo", "use_recommended": False, "lora_r": 0}, defaults=True)
    assert e.value.problems == ["lab.yaml: lora_r: Input should be greater than or equal to 1 (got 0)"]
    with pytest.raises(UserError) as e:
        wizard(tmp_path, {"hub": "demo", "scheduler": "sometimes"}, defaults=True)
    assert e.value.problems[0].startswith("lab.yaml: scheduler: one of: cosine, linear, constant")
    assert list(tmp_path.iterdir()) == [], "nothing is written"


def test_a_missing_answer_without_a_terminal_names_the_question(tmp_path):
    with pytest.raises(UserError) as e:
        wizard(tmp_path, {"hub": "demo", "task": "sft-lora"})
    assert "lab.yaml has no answer for 'dataset' (Which dataset?)" in e.value.problems[0]
    assert "--defaults" in e.value.hint
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_overwritten_only_when_the_answers_say_so(tmp_path):
    out = tmp_path / "spec.yaml"
    out.write_text("keep: me\n")
    with pytest.raises(UserError) as e:
        wizard(tmp_path, defaults=True, out=str(out))
    assert f"{out} exists" in e.value.problems[0] and "spec-2.yaml" in e.value.hint
    assert out.read_text() == "keep: me\n"
    path, _, _ = wizard(tmp_path, {"overwrite": True}, defaults=True, out=str(out))
    assert path == out and specmod.load(out).model.id == "smollm2-135m-instruct"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"], "no temporary file is left behind"
