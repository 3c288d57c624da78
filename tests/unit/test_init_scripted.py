"""`tune-wizard init` without a person: --defaults, --answers FILE, the no-terminal and no-overwrite rules.

Each test runs the real command in a subprocess with stdin from /dev/null (not a terminal), as a job
under a scheduler would.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import chat_rows, every_kind_of_answer
from wizard import spec as specmod
from wizard.catalog import recipes_dir

pytestmark = pytest.mark.process
ENV = {**os.environ, "TUNE_WIZARD_OFFLINE": "1", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}


def init(*args: str, cwd: Path, answers: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "wizard", "init", *args]
    if answers is not None:
        (cwd / "answers.yaml").write_text(yaml.safe_dump(answers), encoding="utf-8")
        cmd += ["--answers", str(cwd / "answers.yaml")]
    return subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=180, env=ENV)


def test_without_a_terminal_it_points_at_the_flags(tmp_path):
    r = init("--no-start", cwd=tmp_path)
    assert r.returncode == 2
    assert "not a terminal" in r.stderr and "--defaults" in r.stderr and "--answers" in r.stderr
    assert not list(tmp_path.iterdir())


def test_defaults_write_a_valid_spec(tmp_path):
    r = init("--defaults", "--no-start", cwd=tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    files = [p for p in tmp_path.glob("*.yaml") if not p.name.endswith(".answers.yaml")]
    assert len(files) == 1, r.stdout
    spec = specmod.load(files[0])
    # The method is the estimate's pick for this machine (LoRA on a CPU, QLoRA where memory is short).
    assert spec.task == "sft" and spec.method in ("qlora", "lora")
    assert files[0].name == f"smollm2-135m-instruct-sft-{spec.method}.yaml" == f"{spec.name}.yaml"
    assert f"tune-wizard run ./{files[0].name}" in r.stdout  # the summary names the file and the command
    assert spec.model.id == "smollm2-135m-instruct" and spec.model.hub == "auto"
    assert [Path(s.path).name for s in spec.data.train] == ["self_cognition.jsonl", "general_chat.jsonl"]
    assert all(Path(s.path).is_file() for s in spec.data.train)
    v = subprocess.run([sys.executable, "-m", "wizard", "validate", str(files[0]), "--no-tokens"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=180, env=ENV)
    assert v.returncode == 0, v.stderr + v.stdout


def test_answers_file_sets_every_kind_of_answer(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = chat_rows(tmp_path / "mine.jsonl")
    answers = every_kind_of_answer(model, data)
    r = init("--no-start", "--out", "specs/custom.yaml", cwd=tmp_path, answers=answers)
    assert r.returncode == 0, r.stderr + r.stdout
    spec = specmod.load(tmp_path / "specs" / "custom.yaml")
    assert spec.model.id == str(model.resolve()) and spec.model.hub == "local"
    assert (spec.task, spec.method) == ("sft", "lora")
    assert Path(spec.data.train[0].path) == data.resolve()
    assert (spec.lora.r, spec.lora.alpha, spec.lora.dropout) == (16, 64, 0.1)
    assert spec.lora.target_modules == ["q_proj", "k_proj"]
    t = spec.train
    assert (t.lr, t.epochs, t.batch_size, t.grad_accum, t.max_steps) == (1e-4, 2, 2, 8, 30)
    assert (t.warmup_ratio, t.weight_decay, t.scheduler, t.optimizer) == (0.1, 0.01, "linear", "adamw_8bit")
    assert (t.save_steps, t.logging_steps, t.gradient_checkpointing, t.seed) == (50, 2, "off", 7)
    assert (spec.data.max_length, spec.data.packing, spec.data.eval_split) == (512, True, 0.2)
    assert spec.output_dir == "out" and spec.name == "custom"
    assert "format alpaca" in r.stdout and "10 rows" in r.stdout  # the dataset preview


def test_answers_plus_defaults_fill_the_rest_and_free_form_values_map(tmp_path):
    pref = recipes_dir() / "data" / "preference_demo.jsonl"
    answers = {"hub": "huggingface", "model": "Qwen/Qwen2.5-0.5B-Instruct", "task": "dpo-lora",
               "dataset": str(pref), "lr": 5e-6, "name": "pref"}
    r = init("--defaults", "--no-start", cwd=tmp_path, answers=answers)
    assert r.returncode == 0, r.stderr + r.stdout
    spec = specmod.load(tmp_path / "pref.yaml")
    # A catalog model's hub id maps to its alias; a free-form dataset path to "a local file".
    assert spec.model.hub == "huggingface" and spec.model.id in ("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct")
    assert spec.task == "dpo" and spec.method == "lora" and spec.train.lr == 5e-6
    assert Path(spec.data.train[0].path) == pref.resolve()
    assert "from answers.yaml" in r.stdout


def test_missing_answer_without_terminal_names_the_question(tmp_path):
    r = init("--no-start", cwd=tmp_path, answers={"hub": "demo", "task": "sft-lora"})
    assert r.returncode == 2
    assert "no answer for 'dataset'" in r.stderr and "--defaults" in r.stderr
    assert not list(tmp_path.glob("*.yaml")) or [p.name for p in tmp_path.glob("*.yaml")] == ["answers.yaml"]


def test_unknown_ids_and_bad_values_exit_2(tmp_path):
    r = init("--defaults", "--no-start", cwd=tmp_path, answers={"learning_rate": 1e-4, "datset": "x"})
    assert r.returncode == 2
    assert "'learning_rate' is not a question id; did you mean 'lr'?" in r.stderr
    assert "'datset' is not a question id; did you mean 'dataset'?" in r.stderr
    r = init("--defaults", "--no-start", cwd=tmp_path, answers={"task": "sft-qlora", "lora_r": "big"})
    assert r.returncode == 2 and "lora_r" in r.stderr and "'big'" in r.stderr
    r = init("--defaults", "--no-start", cwd=tmp_path, answers={"hub": "somewhere"})
    assert r.returncode == 2 and "hub: one of: modelscope, huggingface, local, demo" in r.stderr
    assert [p.name for p in tmp_path.glob("*.yaml")] == ["answers.yaml"]


def test_an_existing_file_is_never_overwritten_without_asking(tmp_path):
    data = chat_rows(tmp_path / "d.jsonl")
    out = tmp_path / "spec.yaml"
    out.write_text("keep: me\n")
    base = {"hub": "demo", "dataset": str(data)}
    r = init("--defaults", "--no-start", "--out", str(out), cwd=tmp_path, answers=base)
    assert r.returncode == 2
    assert f"{out} exists" in r.stderr and "--out" in r.stderr and "spec-2.yaml" in r.stderr
    assert out.read_text() == "keep: me\n"
    r = init("--defaults", "--no-start", "--out", str(out), cwd=tmp_path,
             answers={**base, "overwrite": False, "out_file": str(tmp_path / "other.yaml")})
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "keep: me\n"
    # The dataset beside the spec is written relative to it, so the folder can move as a whole.
    assert yaml.safe_load((tmp_path / "other.yaml").read_text())["data"]["train"] == ["d.jsonl"]
    r = init("--defaults", "--no-start", "--out", str(out), cwd=tmp_path, answers={**base, "overwrite": True})
    assert r.returncode == 0, r.stderr
    assert specmod.load(out).model.id == "smollm2-135m-instruct"
