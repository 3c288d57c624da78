"""The model picker (wizard.init.picker): a filter never leaves the pointer on a heading, Enter never answers
with one, and a filter that matches nothing offers the text as a hub id only when it has the owner/name form.

Keys go through a prompt_toolkit pipe, in-process: the picker's own Application, no terminal, no process.
"""
from __future__ import annotations

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from questionary import Choice, Separator

from wizard import hubs
from wizard.init.picker import FilterControl, Typed, filter_select

DOWN, UP, BACKSPACE = "\x1b[B", "\x1b[A", "\x7f"
CHOICES = [Separator("── DeepSeek"), Choice("deepseek-r1-distill-qwen-7b   7B", "deepseek-r1-distill-qwen-7b"),
           Separator("── Qwen"), Choice("qwen2.5-7b-instruct   7B", "qwen2.5-7b-instruct"),
           Choice("qwen2.5-0.5b-instruct   0.5B", "qwen2.5-0.5b-instruct"),
           Separator("── Other"), Choice("Type a model id (owner/name) …", "other")]


def typed(text: str) -> str | None:
    return f"use '{text}' as a hub id" if hubs.is_repo_id(text) else None


def pick(keys: str, default: str | None = None):
    with create_pipe_input() as inp:
        inp.send_text(keys)
        return filter_select("Which model?", CHOICES, default, typed=typed, input=inp,
                             output=DummyOutput()).unsafe_ask()


def test_enter_takes_the_default_or_the_first_choice_never_a_heading():
    assert pick("\r") == "deepseek-r1-distill-qwen-7b"
    assert pick("\r", default="qwen2.5-0.5b-instruct") == "qwen2.5-0.5b-instruct"
    assert pick(UP + UP + "\r") == "qwen2.5-0.5b-instruct"  # up over the "Other" heading


def test_a_filter_points_at_its_first_match_and_moves_over_headings():
    assert pick("deep\r") == "deepseek-r1-distill-qwen-7b"   # "── DeepSeek" matches too in questionary's
    assert pick("qwen\r") == "deepseek-r1-distill-qwen-7b"   # its title holds "qwen": the first match
    assert pick("qwen" + DOWN + "\r") == "qwen2.5-7b-instruct"  # down over the "── Qwen" heading
    assert pick("0.5b\r") == "qwen2.5-0.5b-instruct"


def test_a_filter_matching_nothing_is_offered_as_a_hub_id_only_in_owner_name_form():
    assert pick("Qwen/Qwen2-7B\r") == Typed("Qwen/Qwen2-7B")
    # Not an id: Enter does nothing (the issue's `model.id: ── DeepSeek`); the filter can still be changed.
    assert pick("zzz\r" + BACKSPACE * 3 + "0.5b\r") == "qwen2.5-0.5b-instruct"


def test_the_filtered_list_shows_headings_above_matches_and_never_points_at_one():
    ic = FilterControl(CHOICES, None, typed)
    for text in ("q", "qwen", "deep", "zzz", "a/b", "type", "7b"):
        ic.search_filter = None
        for ch in text:
            ic.add_search_character(ch)
        shown = ic.filtered_choices
        assert not isinstance(ic.get_pointed_at(), Separator), text
        assert all(not isinstance(c, Separator) or shown[n + 1:] and not isinstance(shown[n + 1], Separator)
                   for n, c in enumerate(shown)), f"{text}: a heading with no choice under it"
        if text in ("zzz",):
            assert [c.title for c in shown] == ["nothing matches 'zzz'"] and not ic.is_selection_valid()
        elif text == "a/b":
            assert [c.value for c in shown] == [Typed("a/b")] and ic.is_selection_valid()
        else:
            assert ic.is_selection_valid(), text


@pytest.mark.parametrize("raw", ["── DeepSeek", "── Other"])
def test_headings_are_no_answer_in_an_answers_file_either(raw, tmp_path, monkeypatch):
    """`model: ── DeepSeek` (what the old picker wrote) is refused, naming the key."""
    from tests.unit.test_init_flow import wizard
    from wizard.errors import UserError

    monkeypatch.setenv("TUNE_WIZARD_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        wizard(tmp_path, {"hub": "huggingface", "model": raw}, defaults=True)
    assert e.value.problems[0].startswith("lab.yaml: model: ")
    with pytest.raises(UserError) as e:
        wizard(tmp_path, {"hub": "huggingface", "model": "other", "model_id": raw}, defaults=True)
    assert e.value.problems[0].startswith("lab.yaml: model_id: an id looks like owner/name")
    assert not list(tmp_path.glob("*.yaml"))


def test_the_answers_never_give_a_model_id_that_resolves_to_nothing(tmp_path):
    """The last check before a spec is written (wizard.init.answers.model_problem), whatever path the answers
    took: a catalog alias, an owner/name id or an existing path, else the key that holds it."""
    from wizard.init.answers import model_problem
    from wizard.init.context import Context

    ctx = Context()
    assert model_problem({"hub": "huggingface", "model": "── DeepSeek"}, ctx)[0] == "model"
    assert model_problem({"hub": "modelscope", "model": "other", "model_id": "── Other"}, ctx)[0] == "model_id"
    assert model_problem({"hub": "local", "model_path": str(tmp_path / "gone")}, ctx)[0] == "model_path"
    for fine in ({"hub": "huggingface", "model": "qwen2.5-7b-instruct"},
                 {"hub": "huggingface", "model": "other", "model_id": "someone/model"},
                 {"hub": "local", "model_path": str(tmp_path)}, {"hub": "demo"}):
        assert model_problem(fine, ctx) is None, fine
