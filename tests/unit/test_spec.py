"""The run spec: recipes validate; unknown keys, wrong types and bad values are named, all at once."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import cli
from wizard import spec as specmod
from wizard.catalog import recipe_files
from wizard.errors import SpecError

MINIMAL = {"model": {"id": "smollm2-135m-instruct"}, "data": {"train": "recipes/data/self_cognition.jsonl"}}


def write(tmp_path, text: str, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


@pytest.mark.parametrize("recipe", recipe_files(), ids=lambda p: p.name)
def test_every_bundled_recipe_validates(recipe):
    spec = specmod.load(recipe)
    assert spec.version == 1
    for src in spec.data.train:
        # Relative paths resolve against the recipe's folder, so every bundled dataset must exist.
        assert Path(src.path).is_file(), f"{recipe.name}: {src.path} does not exist"


def test_defaults_match_the_qlora_recipe():
    spec = specmod.from_dict(MINIMAL)
    assert (spec.method, spec.lora.r, spec.lora.alpha, spec.lora.dropout) == ("qlora", 8, 32, 0.05)
    assert (spec.quant.type, spec.quant.double_quant) == ("nf4", True)
    assert (spec.train.batch_size, spec.train.grad_accum, spec.train.lr) == (1, "auto", 2e-4)
    assert (spec.train.batching, spec.train.batch_tokens, spec.train.attention) == ("tokens", "auto", "auto")
    assert (spec.train.scheduler, spec.train.optimizer, spec.data.max_length) == ("cosine", "adamw_torch", 2048)


def test_unknown_key_names_the_key_and_the_nearest_valid_one():
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "train": {"learning_rate": 1e-4}})
    (msg,) = e.value.problems
    assert "train.learning_rate" in msg and "unknown key" in msg
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "lora": {"rank": 8}})
    assert "lora.rank" in e.value.problems[0] and "did you mean 'r'?" in e.value.problems[0]
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "epochs": 3})
    assert "epochs" in e.value.problems[0]


def test_other_trainers_names_point_at_the_field_wherever_they_sit():
    # The alias table (wizard/spec/aliases.py): in the field's own section its name, elsewhere its whole path.
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "learning_rate": 1e-4, "train": {"lora_rank": 8}, "lora": {"lora_rank": 8},
                           "stage": "sft"})
    text = "\n".join(e.value.problems)
    assert "spec: learning_rate: unknown key; did you mean 'train.lr'?" in text
    assert "spec: train.lora_rank: unknown key; did you mean 'lora.r'?" in text
    assert "spec: lora.lora_rank: unknown key; did you mean 'r'?" in text
    assert "spec: stage: unknown key; did you mean 'task'?" in text


def test_a_bad_run_name_says_what_a_name_may_hold():
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "name": "my run"})
    assert e.value.problems == ["spec: name: letters, digits, '.', '_' and '-' only, starting with a letter or "
                                "digit (got 'my run')"]


def test_every_field_is_described():
    from wizard.spec import fields

    undescribed = [p for p in fields.paths() if not fields.description(p)]
    assert not undescribed, f"give these fields a description in wizard/spec/model.py: {undescribed}"


def test_the_commented_yaml_is_written_atomically(tmp_path):
    from wizard.spec import yaml_writer

    spec = specmod.from_dict(MINIMAL)
    target = tmp_path / "spec.yaml"
    target.mkdir()  # a folder where the file should go: the final rename fails
    with pytest.raises(OSError):
        yaml_writer.write(spec, target)
    assert target.is_dir() and list(tmp_path.iterdir()) == [target], "no temporary file is left behind"
    written = yaml_writer.write(spec, tmp_path / "sub" / "s.yaml", header="hello")
    assert written.read_text(encoding="utf-8") == yaml_writer.render(spec, "hello")
    assert specmod.load(written).to_dict() == spec.to_dict()
    assert [p.name for p in written.parent.iterdir()] == ["s.yaml"]


def test_every_error_is_reported_at_once():
    raw = {"model": {"id": "x"}, "data": {"train": "a.jsonl", "max_lenght": 512},
           "train": {"lr": "fast", "batch_size": 0}, "method": "qlora2"}
    with pytest.raises(SpecError) as e:
        specmod.from_dict(raw)
    text = "\n".join(e.value.problems)
    assert len(e.value.problems) == 4, text
    assert "data.max_lenght: unknown key; did you mean 'max_length'?" in text
    assert "train.lr" in text and "'fast'" in text
    assert "train.batch_size" in text and "greater than or equal to 1" in text
    assert "method" in text and "qlora2" in text


def test_yaml_numbers_like_2e_4_are_numbers(tmp_path):
    p = write(tmp_path, """
        model: {id: smollm2-135m-instruct}
        data: {train: x.jsonl}
        train: {lr: 2e-4}
    """)
    assert specmod.load(p).train.lr == pytest.approx(2e-4)


def test_set_overrides_any_field(tmp_path):
    p = write(tmp_path, yaml.safe_dump(MINIMAL))
    spec = specmod.load(p, ["train.lr=1e-4", "data.max_length=512", "lora.target_modules=[q_proj, k_proj]",
                            "train.gradient_checkpointing=off", "name=my-run"])
    assert spec.train.lr == pytest.approx(1e-4)
    assert spec.data.max_length == 512
    assert spec.lora.target_modules == ["q_proj", "k_proj"]
    assert spec.train.gradient_checkpointing == "off"
    assert spec.name == "my-run"
    with pytest.raises(SpecError) as e:
        specmod.load(p, ["train.lr"])
    assert "KEY=VALUE" in e.value.problems[0]


def test_dataset_shorthand_with_row_sample():
    spec = specmod.from_dict({**MINIMAL, "data": {"train": ["a.jsonl", "org/set#500"]}})
    assert [(s.path, s.sample) for s in spec.data.train] == [("a.jsonl", None), ("org/set", 500)]
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "data": {"train": "org/set#lots"}})
    assert "row count" in e.value.problems[0]


def test_dpo_with_full_is_refused():
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "task": "dpo", "method": "full"})
    assert "dpo" in e.value.problems[0] and "lora" in e.value.problems[0]


def test_round_trip_through_yaml(tmp_path):
    spec = specmod.from_dict({**MINIMAL, "train": {"lr": 3e-4}})
    out = specmod.dump(spec, tmp_path / "s.yaml")
    assert specmod.load(out).to_dict() == spec.to_dict() | {"data": specmod.load(out).to_dict()["data"]}


@pytest.mark.process
@pytest.mark.parametrize("body,needle", [
    ("model: {id: a}\ndata: {train: x.jsonl}\ntrain: {learning_rate: 1}\n", "train.learning_rate: unknown key; did you mean 'lr'?"),
    ("model: {id: a}\ndata: {train: x.jsonl}\ntrain: {epochs: three}\n", "train.epochs"),
    ("model: {id: a}\ndata: {train: x.jsonl}\nmethod: qlroa\n", "method"),
    ("model: {id: a}\ndata: {train: x.jsonl\n", "not valid YAML"),
])
def test_cli_exit_2_names_the_key(tmp_path, body, needle):
    p = write(tmp_path, body)
    r = cli("validate", str(p), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.process
def test_cli_missing_spec_file(tmp_path):
    r = cli("run", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
    assert "nope.yaml: no such file" in r.stderr and "tune-wizard init" in r.stderr


def test_token_budget_must_hold_a_full_row_and_auto_or_numbers_only():
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "data": {"train": "d.jsonl", "max_length": 4096}, "train": {"batch_tokens": 2048}})
    assert "train.batch_tokens (2048) is below data.max_length (4096)" in e.value.problems[0]
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "train": {"grad_accum": 0, "batch_tokens": "lots"}})
    text = "\n".join(e.value.problems)
    assert "train.grad_accum: must be a positive number or 'auto'" in text and "train.batch_tokens" in text
    # batching rows does not read the budget
    rows = specmod.from_dict({**MINIMAL, "train": {"batching": "rows", "batch_tokens": 16, "grad_accum": 4}})
    assert (rows.train.batch_tokens, rows.train.grad_accum) == (16, 4)


def test_a_near_miss_of_another_trainers_name_points_at_its_field():
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, "train": {"learning_rat": 1e-4}})
    assert e.value.problems == ["spec: train.learning_rat: unknown key; did you mean 'lr'?"]


@pytest.mark.parametrize("key,value", [("train.seed", -1), ("train.seed", 2**32), ("train.epochs", float("inf")),
                                       ("train.lr", float("nan")), ("lora.dropout", float("nan")),
                                       ("train.warmup_ratio", float("-inf"))])
def test_what_run_would_reject_the_spec_rejects(key, value):
    section, field = key.split(".")
    with pytest.raises(SpecError) as e:
        specmod.from_dict({**MINIMAL, section: {field: value}})
    (msg,) = e.value.problems
    assert msg.startswith(f"spec: {key}: "), msg


def test_a_bad_set_value_is_blamed_on_the_set_argument(tmp_path):
    p = write(tmp_path, yaml.safe_dump({**MINIMAL, "train": {"lr": "fast"}}))
    with pytest.raises(SpecError) as e:
        specmod.load(p, ["train.seed=-1", "lora.r=8"])
    text = "\n".join(e.value.problems)
    assert "--set train.seed=-1: train.seed: Input should be greater than or equal to 0 (got -1)" in text
    assert f"{p}: train.lr: " in text  # the file's own bad value is still the file's


def test_a_folder_given_as_the_spec_says_so(tmp_path):
    run = tmp_path / "runs" / "demo-20250101-000000"
    run.mkdir(parents=True)
    (run / "spec.yaml").write_text(yaml.safe_dump(MINIMAL))
    with pytest.raises(SpecError) as e:
        specmod.load(run)
    assert e.value.problems == [f"{run}: a folder, not a spec file"]
    assert e.value.hint == f"pass {run / 'spec.yaml'} (the run's own spec)"
