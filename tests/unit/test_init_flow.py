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

DOWN, CLEAR, ESC = "\x1b[B", "\x15", "\x1b"
WRITE = "\r"  # the review's first choice when the spec fits: Write the spec

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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.answers.yaml", "spec.yaml"], \
        "no temporary file is left behind"


# ---------------------------------------------------------------- a person at the prompts, in-process

def wizard_keys(tmp_path: Path, answers: dict, keys: str, *, gpu_gb: float | None = 24, hubs: bool = False,
                out: str | None = None, previous: Path | None = None):
    """The interactive wizard with an answers file for most questions and KEYS typed at the prompts it still
    asks, through a prompt_toolkit pipe (no terminal, no process), on a machine with one GPU of GPU_GB
    (and both hubs answering, with HUBS); OUT as --out, PREVIOUS a previous run's answers file."""
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from tests.unit.test_questions import _machine
    from wizard.init import saved

    ctx = Context(hardware=_machine(gpu_gb), cwd=tmp_path, preset=dict(answers), no_start=True,
                  hubs={"huggingface": hubs, "modelscope": hubs}, hubs_checked=hubs, out=Path(out) if out else None,
                  previous=saved.read_previous(previous) if previous else {}, previous_file=previous)
    buf = io.StringIO()
    console = Console(file=buf, width=160, color_system=None)
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        inp.send_text(keys)
        inp.close()  # the keys run out: EOFError instead of a test that waits forever
        try:
            path, _ = run_wizard(ctx, console, interactive=True, use_defaults=False, answers_file="lab.yaml")
        except BaseException:
            print(buf.getvalue())
            raise
    return path, path.read_text(encoding="utf-8"), buf.getvalue()


def test_enter_at_every_prompt_on_a_gpu_machine_equals_defaults(tmp_path):
    """Hub, mirror, the model list, download now (no), task, dataset, recommended settings, output folder, name,
    the review's Write: Enter each time."""
    from tests.unit.test_questions import _machine

    path, text, screen = wizard_keys(tmp_path, {}, "\r" * 10, hubs=True)
    ctx = Context(hardware=_machine(24), cwd=tmp_path, no_start=True, out=tmp_path / "defaults.yaml",
                  hubs={"huggingface": True, "modelscope": True}, hubs_checked=True)
    run_wizard(ctx, Console(file=io.StringIO()), interactive=False, use_defaults=True)
    entered = yaml.safe_load(text)
    assert entered == yaml.safe_load((tmp_path / "defaults.yaml").read_text())
    assert entered["model"]["id"] == "qwen2.5-7b-instruct" and "✓ fits" in screen


BIG = {"hub": "huggingface", "hf_endpoint": "", "download": False, "task": "sft-lora", "dataset": "hub", "dataset_hub": "o/d", "use_recommended": True,
       "output_dir": "runs"}


def test_a_typed_hub_id_in_the_model_list_is_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the estimate reads an unknown model's config.json: cache only
    answers = {k: v for k, v in BIG.items() if k != "task"} | {"task": "sft-qlora", "name": "typed"}
    path, text, screen = wizard_keys(tmp_path, answers, "someone/some-model-7b\r" + WRITE, gpu_gb=None)
    spec = specmod.load(path)
    assert (spec.model.id, spec.model.hub) == ("someone/some-model-7b", "huggingface")
    assert "Model id (owner/name) someone/some-model-7b (typed in the list)" in screen
    # A catalog model's hub id stands for its alias.
    path, _, _ = wizard_keys(tmp_path, {**answers, "name": "cat"}, "Qwen/Qwen2.5-0.5B-Instruct\r" + WRITE)
    assert specmod.load(path).model.id == "qwen2.5-0.5b-instruct"


def test_does_not_fit_offers_the_estimates_change_and_applies_it(tmp_path):
    # Qwen2.5-14B with LoRA needs ~29 GiB; the 24 GiB GPU holds it with QLoRA: Enter takes that change.
    path, text, screen = wizard_keys(tmp_path, {**BIG, "model": "qwen2.5-14b-instruct"}, "\r" + "\r" + WRITE)
    assert "✗ does not fit" in screen and "Apply: method: qlora (4-bit frozen weights), the one" in screen
    assert "applied method: qlora" in screen and "✓ fits" in screen.split("applied method: qlora")[1]
    spec = specmod.load(path)
    assert (spec.task, spec.method) == ("sft", "qlora")
    # The run name was the default (asked: Enter above), so it follows the method; the file too.
    assert spec.name == "qwen2.5-14b-instruct-sft-qlora" and path.name == "qwen2.5-14b-instruct-sft-qlora.yaml"
    assert "written anyway" not in screen


def test_does_not_fit_edit_asks_the_hyperparameters_again_then_write_anyway(tmp_path):
    answers = {**BIG, "model": "qwen2.5-14b-instruct", "name": "big"}
    edit = DOWN + "\r"
    # lora_r, lora_alpha, lr (typed), epochs, max_length, batching, batch_tokens, grad_accum, advanced: Enter
    # offers each value the spec had; then the estimate still says no: write it anyway.
    tuning = "\r\r" + CLEAR + "1e-4\r" + "\r" * 6
    path, text, screen = wizard_keys(tmp_path, answers, edit + tuning + DOWN + DOWN + "\r")
    spec = specmod.load(path)
    from tests.unit.test_questions import _machine

    rec = Context(hardware=_machine(24)).settings_for("qwen2.5-14b-instruct", "sft", "lora")
    assert (spec.method, spec.train.lr, spec.lora.r) == ("lora", 1e-4, 8)
    assert spec.data.max_length == rec["data.max_length"] and spec.train.batch_tokens == rec["train.batch_tokens"]
    assert screen.count("✗ does not fit") == 2
    assert "✗ The estimate says this run does not fit" in screen and "written anyway (you said so)" in screen


def test_does_not_fit_without_a_person_is_written_with_a_clear_warning(tmp_path):
    from tests.unit.test_questions import _machine

    answers = {"hub": "huggingface", "model": "qwen2.5-32b-instruct", "task": "sft-full", "dataset": "hub",
               "dataset_hub": "o/d"}
    ctx = Context(hardware=_machine(24), cwd=tmp_path, preset=answers, no_start=True)
    buf = io.StringIO()
    path, _ = run_wizard(ctx, Console(file=buf, width=200, color_system=None), interactive=False,
                         use_defaults=True, answers_file="lab.yaml")
    screen = buf.getvalue()
    assert path.is_file() and specmod.load(path).method == "full"
    warning = screen.split(f"✓ wrote ./{path}")[1]
    assert "✗ The estimate says this run does not fit: about 306" in warning
    assert "23.5 GiB available (GPU 0 (NVIDIA A10))" in warning and "written anyway (--defaults)" in warning
    # an answers file that answers everything, no --defaults: the same
    full = {**answers, "hf_endpoint": "", "use_recommended": True, "output_dir": "runs", "name": "big"}
    ctx = Context(hardware=_machine(24), cwd=tmp_path, preset=full, no_start=True)
    buf = io.StringIO()
    path, _ = run_wizard(ctx, Console(file=buf, width=200, color_system=None), interactive=False,
                         use_defaults=False, answers_file="lab.yaml")
    assert path.name == "big.yaml" and "written anyway (--answers without a terminal)" in buf.getvalue()
    # --defaults alone, a max length no machine holds
    path, _, screen = wizard(tmp_path, {"hub": "demo", "use_recommended": False, "max_length": 999999,
                                         "batch_tokens": "auto"},
                             defaults=True, out="long.yaml")
    assert specmod.load(path).data.max_length == 999999
    assert "✗ The estimate says this run does not fit" in screen.split("✓ wrote ./long.yaml")[1]


def test_a_modelscope_choice_reaches_the_dataset_download(tmp_path, monkeypatch):
    answers = {"hub": "modelscope", "model": "qwen2.5-0.5b-instruct", "task": "sft-lora",
               "dataset": "AI-ModelScope/alpaca-gpt4-data-en#500", "name": "ms"}
    path, text, screen = wizard(tmp_path, answers, defaults=True)
    spec = specmod.load(path)
    assert spec.model.hub == "modelscope"
    [src] = spec.data.train
    assert (src.path, src.sample, src.hub) == ("AI-ModelScope/alpaca-gpt4-data-en", 500, "modelscope")
    [written] = yaml.safe_load(text)["data"]["train"]
    assert (written["path"], written["hub"], written["sample"]) == ("AI-ModelScope/alpaca-gpt4-data-en", "modelscope", 500)
    assert_commented(text)
    assert "AI-ModelScope/alpaca-gpt4-data-en#500 (modelscope)" in screen and "downloaded from ModelScope" in screen
    # The download goes to ModelScope, with no USE_MODELSCOPE_HUB where the run starts: the spec says it.
    from wizard.data import hub as data_hub
    from wizard.data.readers import Row

    monkeypatch.delenv("USE_MODELSCOPE_HUB", raising=False)
    asked = []
    monkeypatch.setattr(data_hub, "_modelscope", lambda s, p: asked.append(("modelscope", s.path)) or (
        [Row("x", {"instruction": "a", "output": "b"}, 0)], "x"))
    monkeypatch.setattr(data_hub, "_huggingface", lambda s: asked.append(("huggingface", s.path)))
    rows, n, hub = data_hub.load_hub(src, 42, None)
    assert asked == [("modelscope", "AI-ModelScope/alpaca-gpt4-data-en")] and hub == "modelscope"
    # Hugging Face chosen: its dataset ids name Hugging Face; the demo model keeps `auto` (the shorthand).
    path, _, _ = wizard(tmp_path, {**answers, "hub": "huggingface", "name": "hf"}, defaults=True)
    assert specmod.load(path).data.train[0].hub == "huggingface"
    demo = {k: v for k, v in answers.items() if k != "model"} | {"hub": "demo", "name": "demo"}
    path, text, _ = wizard(tmp_path, demo, defaults=True)
    assert yaml.safe_load(text)["data"]["train"] == ["AI-ModelScope/alpaca-gpt4-data-en#500"]


# ---------------------------------------------------------------- answers files: nothing silently ignored

def test_a_model_answer_without_a_hub_sets_the_hub(tmp_path, monkeypatch):
    monkeypatch.delenv("USE_MODELSCOPE_HUB", raising=False)
    base = {"dataset": "bundled:mix", "hf_endpoint": ""}
    path, _, screen = wizard(tmp_path, {**base, "model": "qwen2.5-7b-instruct", "name": "hf"}, defaults=True)
    assert (specmod.load(path).model.id, specmod.load(path).model.hub) == ("qwen2.5-7b-instruct", "huggingface")
    assert "Where should the model come from? huggingface (from model in lab.yaml)" in screen
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    path, _, _ = wizard(tmp_path, {"dataset": "bundled:mix", "model": "Qwen/Qwen2.5-0.5B-Instruct", "name": "ms"},
                        defaults=True)
    assert (specmod.load(path).model.id, specmod.load(path).model.hub) == ("qwen2.5-0.5b-instruct", "modelscope")
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    path, _, _ = wizard(tmp_path, {"dataset": "bundled:mix", "model": str(folder), "name": "local"}, defaults=True)
    assert (specmod.load(path).model.id, specmod.load(path).model.hub) == (str(folder.resolve()), "local")


def test_an_answer_whose_question_is_not_asked_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(UserError) as e:
        wizard(tmp_path, {"hub": "demo", "model": "qwen2.5-7b-instruct", "task": "sft-full", "lora_r": 16},
               defaults=True)
    assert e.value.problems == [
        "lab.yaml: 'lora_r' (LoRA rank) is not asked with these answers: it is asked only with method lora or qlora "
        "(task sft-qlora, sft-lora, dpo-qlora, dpo-lora)",
        "lab.yaml: 'model' (Which model?) is not asked with these answers: it is asked only with hub: huggingface or "
        "modelscope"]
    assert "remove the key" in e.value.hint
    assert not list(tmp_path.glob("*.yaml"))


def test_every_bad_answer_of_a_file_is_reported_at_once(tmp_path):
    with pytest.raises(UserError) as e:
        wizard(tmp_path, {"hub": "demo", "task": "sft-lora", "dataset": str(tmp_path / "nope.jsonl"),
                          "use_recommended": False, "lr": 1.5, "epochs": "many", "scheduler": "sometimes"})
    got = e.value.problems
    assert [p.split(":")[1].strip() for p in got if p.startswith("lab.yaml:")] == [
        "dataset", "lr", "epochs", "scheduler"], got
    assert "lab.yaml: lr: Input should be less than 1 (got 1.5)" in got
    # ... with the answers it lacks, and no terminal to ask
    assert any("no answer for 'output_dir'" in p for p in got) and "--defaults" in e.value.hint
    assert not list(tmp_path.glob("*.yaml"))


def test_each_change_the_estimate_advises_maps_to_the_answer_it_changes():
    from wizard.init.answers import change_answers

    ctx = Context()
    a = {"hub": "demo", "task": "sft-lora", "max_length": 4096, "batching": "rows", "batch_size": 4, "grad_accum": 4,
         "gradient_checkpointing": "off", "optimizer": "adamw_torch"}
    assert change_answers("method: qlora (4-bit frozen weights)", a, ctx) == {"task": "sft-qlora"}
    assert change_answers("method: lora (train adapters, not every weight)", {**a, "task": "sft-full"}, ctx) == {
        "task": "sft-lora"}
    assert change_answers("train.gradient_checkpointing: on (recompute each layer in backward)", a, ctx) == {
        "gradient_checkpointing": "on"}
    assert change_answers("train.batch_size: 1 with train.grad_accum x4 (same total batch)", a, ctx) == {
        "batch_size": 1, "grad_accum": 16}
    assert change_answers("data.max_length: 2048 (longer rows are truncated or dropped)", a, ctx) == {"max_length": 2048}
    assert change_answers("train.optimizer: paged_adamw_8bit (8-bit states that can spill to CPU RAM)", a, ctx) == {
        "optimizer": "paged_adamw_8bit"}
    tokens = {**a, "batching": "tokens", "batch_tokens": "8192"}
    assert change_answers("train.batch_tokens: 4096 (fewer tokens per forward pass; not below data.max_length)",
                          tokens, ctx) == {"batch_tokens": "4096"}
    # half the budget below the max length: the rows shorten with it (a pass holds a whole row)
    assert change_answers("train.batch_tokens: 2048 (fewer tokens per forward pass; not below data.max_length)",
                          tokens, ctx) == {"batch_tokens": "2048", "max_length": 2048}
    assert change_answers(None, a, ctx) is None and change_answers("something else entirely", a, ctx) is None
