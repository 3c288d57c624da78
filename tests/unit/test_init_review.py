"""The wizard's way back (Esc, "← back"), the review before writing (Write / Edit a section / Cancel), the
answers file saved beside the spec and offered again, and the commands printed at the end.

Keys go through a prompt_toolkit pipe into the real flow (wizard.init.flow.run_wizard), in-process.
"""
from __future__ import annotations

import pytest
import yaml

from tests.unit.test_init_flow import CLEAR, DOWN, ESC, WRITE, offline, wizard, wizard_keys  # noqa: F401
from wizard import spec as specmod
from wizard.init import questions as Qs
from wizard.init.review import Cancelled

DEMO = {"hub": "demo", "task": "sft-lora"}
UP = "k"
help_of = lambda qid: Qs.help_text(Qs.BY_ID[qid])  # noqa: E731  # the lists take j/k; an arrow's escape sequence right after Esc would read as Alt+arrow


def test_esc_at_the_dataset_file_goes_back_to_the_dataset_list(tmp_path):
    # A local file (the 4th choice), then Esc at its path prompt: the list again, pointing at "A local file";
    # up three to the bundled demo mix; then the recommended settings, folder, name, Write: Enter.
    keys = DOWN * 3 + "\r" + ESC + UP * 3 + "\r" + "\r\r\r" + WRITE
    path, text, screen = wizard_keys(tmp_path, DEMO, keys)
    assert [s.path.rpartition("/")[2] for s in specmod.load(path).data.train] == ["self_cognition.jsonl",
                                                                                 "general_chat.jsonl"]
    assert help_of("dataset_path") in screen  # the dataset-file prompt was asked
    assert screen.count(help_of("dataset")) == 2  # ... and the dataset list twice


def test_esc_at_yes_no_and_text_prompts_goes_back_offering_the_answer_given(tmp_path):
    answers = {**DEMO, "dataset": "bundled:mix"}
    # Recommended settings? No; Esc at the LoRA rank: back to it, now Yes. Folder: Enter; Esc at the run name:
    # the folder again, offering "runs": changed to "elsewhere"; name: Enter; Write.
    keys = "n" + ESC + "y" + "\r" + ESC + CLEAR + "elsewhere\r" + "\r" + WRITE
    path, _, screen = wizard_keys(tmp_path, answers, keys)
    spec = specmod.load(path)
    assert spec.output_dir == "elsewhere" and spec.name == "smollm2-135m-instruct-sft-lora"
    # (the prompts themselves go to the terminal; the help line above each goes to the console)
    assert help_of("lora_r") in screen and screen.count(help_of("use_recommended")) == 2
    rec = specmod.load(path)
    assert rec.lora.r == 16  # the demo recipe's, as recommended, not asked


def test_the_first_question_has_nothing_to_go_back_to(tmp_path):
    # Esc at the first question asked does nothing: Enter then answers it as usual.
    path, _, _ = wizard_keys(tmp_path, DEMO, ESC + "\r" * 4 + WRITE)
    assert specmod.load(path).data.train[0].path.endswith("self_cognition.jsonl")


def test_cancel_at_the_review_writes_nothing(tmp_path):
    answers = {**DEMO, "dataset": "bundled:mix", "use_recommended": True, "output_dir": "runs", "name": "x"}
    with pytest.raises(Cancelled):
        wizard_keys(tmp_path, answers, UP + "\r")  # up from Write wraps to Cancel, the last choice
    assert list(tmp_path.iterdir()) == []


def test_edit_a_section_asks_it_again_then_reviews_again(tmp_path):
    answers = {**DEMO, "dataset": "bundled:mix", "use_recommended": True, "output_dir": "runs", "name": "x"}
    # Review: down to "Edit: the dataset" (Write, where from, task, dataset); the list offers the mix: down to
    # general_chat; the review again: Write.
    keys = DOWN * 3 + "\r" + DOWN + "\r" + WRITE
    path, _, screen = wizard_keys(tmp_path, answers, keys)
    assert [s.path.rpartition("/")[2] for s in specmod.load(path).data.train] == ["general_chat.jsonl"]
    assert screen.count("Edit asks that section's questions again") == 2 and screen.count("Memory estimate") == 2


def test_the_answers_are_saved_beside_the_spec_and_make_it_again(tmp_path):
    answers = {**DEMO, "dataset": "bundled:general_chat", "use_recommended": False, "lr": "1e-4",
               "advanced": False, "output_dir": "myruns", "name": "mine"}
    path, text, screen = wizard(tmp_path, answers, defaults=True)
    saved = tmp_path / "mine.answers.yaml"
    assert f"tune-wizard init --answers ./{saved.name}" in screen
    again = yaml.safe_load(saved.read_text())
    assert again["lr"] == 1e-4 and again["name"] == "mine"
    # As `--answers mine.answers.yaml --out again.yaml`, no terminal, no --defaults: nothing missing.
    path2, text2, _ = wizard(tmp_path, again, out="again.yaml")
    first, second = yaml.safe_load(text), yaml.safe_load(text2)
    assert first == second


def test_a_rerun_offers_the_previous_answers_as_defaults(tmp_path):
    answers = {**DEMO, "task": "sft-qlora", "dataset": "bundled:general_chat", "use_recommended": True,
               "output_dir": "myruns", "name": "before"}
    path, text, _ = wizard(tmp_path, answers, defaults=True)
    # What the recommended settings filled in is not kept: another machine gets its own recommendation.
    assert "lr" not in yaml.safe_load((tmp_path / "before.answers.yaml").read_text())
    # Enter at every prompt, the previous answers file in the folder: the same answers (a new name: no overwrite).
    keys = "\r" * 5 + CLEAR + "after\r" + WRITE
    path2, text2, screen = wizard_keys(tmp_path, {}, keys, gpu_gb=None, previous=tmp_path / "before.answers.yaml")
    assert "defaults: your answers in" in screen
    spec = specmod.load(path2)
    assert (spec.method, spec.output_dir, spec.name) == ("qlora", "myruns", "after")
    assert [s.path.rpartition("/")[2] for s in spec.data.train] == ["general_chat.jsonl"]


def test_the_box_and_the_start_line_show_the_final_file_and_the_mirror(tmp_path):
    (tmp_path / "spec.yaml").write_text("keep: me\n")
    answers = {"hub": "huggingface", "hf_endpoint": "https://mirror.example", "download": False,
               "model": "qwen2.5-0.5b-instruct",
               "task": "sft-lora", "dataset": "hub", "dataset_hub": "o/d", "use_recommended": True,
               "output_dir": "runs", "name": "m"}
    # Write; overwrite ./spec.yaml? Enter (no); the next free name: Enter.
    path, _, screen = wizard_keys(tmp_path, answers, WRITE + "\r" + "\r", out="spec.yaml")
    assert path.name == "spec-2.yaml" and (tmp_path / "spec.yaml").read_text() == "keep: me\n"
    box = screen.split("✓ wrote")[1]
    start = "HF_ENDPOINT=https://mirror.example tune-wizard run ./spec-2.yaml"
    assert "Spec file:  ./spec-2.yaml" in box and f"Run it:     {start}" in box
    assert f"Start it with: {start}" in box and "./spec.yaml" not in box
    assert "tune-wizard init --answers ./spec-2.answers.yaml --out ./spec-2.yaml" in box
    assert f"# Run it:   {start}" in (tmp_path / "spec-2.yaml").read_text()  # the spec's header says the same


def test_sections_are_numbered_with_the_total_and_dpo_shows_no_sft_settings(tmp_path):
    answers = {"hub": "demo", "task": "dpo-lora", "dataset": "bundled:preference_demo", "use_recommended": False,
               "advanced": True, "name": "pref"}
    path, text, screen = wizard(tmp_path, answers, defaults=True)
    assert "1 of 8 · Where the model comes from" in screen and "7 of 8 · Summary" in screen
    summary = screen.split("7 of 8 · Summary")[1]
    assert "packing" not in summary and "assistant_only_loss" not in summary
    # ... nor asked: the advanced questions of DPO leave packing out.
    assert help_of("packing") not in screen and "Pack short rows" not in screen


def test_the_memory_rows_read_as_in_estimate_on_a_cpu(tmp_path):
    """The wizard's memory panel and `tune-wizard estimate` share wizard.estimate.memory.part_rows: on a CPU the
    overhead row is the Python and torch runtime, and empty parts are left out."""
    import io

    from rich.console import Console

    from tests.unit.test_questions import _machine
    from wizard.estimate import estimate
    from wizard.estimate.memory import part_rows
    from wizard.init.context import Context
    from wizard.init.flow import run_wizard

    ctx = Context(hardware=_machine(None), cwd=tmp_path, no_start=True, preset={"hub": "demo", "name": "cpu"})
    buf = io.StringIO()
    run_wizard(ctx, Console(file=buf, width=200, color_system=None), interactive=False, use_defaults=True,
               answers_file="lab.yaml")
    panel = buf.getvalue().split("Memory estimate")[1]
    assert "Python and torch runtime" in panel and "CUDA context" not in panel
    b = estimate({"hidden": 64, "layers": 2, "heads": 4, "intermediate": 128, "vocab": 1000}, method="lora",
                 device="cpu", precision="fp32")
    labels = [label for label, _ in part_rows(b, "cpu")]
    assert "Python and torch runtime" in labels and all(gb >= 0.005 or label in ("weights", "activations")
                                                         for label, gb in part_rows(b, "cpu"))
    assert "CUDA context and allocator slack" in [label for label, _ in part_rows(b, "cuda")]


def test_esc_in_the_model_picker_and_a_text_prompt_walks_back_to_the_hub(tmp_path):
    # Hub: up twice from the demo to Hugging Face; mirror: Enter (none); the model list: Esc; the mirror: Esc;
    # the hub again, offering Hugging Face: down twice to the demo; then Enter to the review, and Write.
    keys = UP * 2 + "\r" + "\r" + ESC + ESC + "jj\r" + "\r" * 5 + WRITE
    path, _, screen = wizard_keys(tmp_path, {}, keys)
    assert specmod.load(path).model.id == "smollm2-135m-instruct"
    assert screen.count(help_of("hf_endpoint")) == 2 and screen.count(help_of("model")) == 1
    assert screen.count(help_of("hub")) == 2


def test_a_path_prompt_keeps_no_rows_free_below_it(tmp_path):
    """A refused path (no such file) is said on the row under the prompt: the wizard's path prompts complete
    on Tab, so they do not keep rows free for a menu that may open while typing (questionary's default keeps
    8, which put the message that far below the prompt)."""
    import questionary
    from prompt_toolkit.application.current import set_app
    from prompt_toolkit.layout.controls import BufferControl
    from prompt_toolkit.layout.dimension import to_dimension

    from wizard.init.flow import PATH_KW

    def rows_kept_free(app) -> set[int]:
        windows = [w for w in app.layout.find_all_windows()
                   if isinstance(w.content, BufferControl) and w.content.buffer is app.layout.current_buffer]
        with set_app(app):
            return {to_dimension(w.height).min for w in windows}

    assert rows_kept_free(questionary.path("Dataset file", **PATH_KW).application) == {0}
    assert rows_kept_free(questionary.path("Dataset file").application) == {8}  # the default, for contrast
