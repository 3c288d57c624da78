"""The bundled demo datasets: well formed, the right size and mix, held-out questions truly unseen."""
from __future__ import annotations

import importlib.util
import json
import re

import pytest
from transformers import AutoTokenizer

from wizard.catalog import recipes_dir
from wizard.model_source import resolve

DATA = recipes_dir() / "data"
CJK = re.compile(r"[\u4e00-\u9fff]")


def _load_jsonl(name: str) -> list[dict]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _generator():
    spec = importlib.util.spec_from_file_location("make_demo_data", DATA / "make_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def identity():
    return _load_jsonl("self_cognition.jsonl")


@pytest.fixture(scope="module")
def general():
    return _load_jsonl("general_chat.jsonl")


@pytest.fixture(scope="module")
def heldout():
    return json.loads((DATA / "identity_heldout.json").read_text(encoding="utf-8"))


def _check_rows(rows):
    for n, row in enumerate(rows, 1):
        assert set(row) == {"messages"}, n
        roles = [m["role"] for m in row["messages"]]
        assert roles in (["user", "assistant"], ["system", "user", "assistant"]), n
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in row["messages"]), n


def test_files_are_well_formed_and_sized(identity, general, heldout):
    _check_rows(identity)
    _check_rows(general)
    assert 250 <= len(identity) <= 400
    assert 80 <= len(general) <= 150
    assert set(heldout) == {"en", "zh", "general"}
    assert 6 <= len(heldout["en"]) <= 12 and 6 <= len(heldout["zh"]) <= 12 and len(heldout["general"]) == 3
    assert all(CJK.search(q) for q in heldout["zh"]) and not any(CJK.search(q) for q in heldout["en"])


def test_identity_mix_and_variety(identity):
    questions = [row["messages"][-2]["content"] for row in identity]
    chinese = sum(bool(CJK.search(q)) for q in questions)
    assert 0.3 <= chinese / len(identity) <= 0.5
    assert len(set(questions)) == len(questions)
    assert len({row["messages"][-1]["content"] for row in identity}) >= 10


def test_answers_name_tuna_and_tune_wizard_and_general_ones_do_not(identity, general):
    for row in identity:
        answer = row["messages"][-1]["content"]
        assert "Tuna" in answer and "tune-wizard" in answer, answer
    for row in general:
        assert not re.search(r"tuna|tune-wizard", row["messages"][-1]["content"], re.I), row


def test_heldout_questions_appear_nowhere_in_training(identity, general, heldout):
    normalize = _generator().normalize
    seen = [normalize(m["content"]) for row in identity + general for m in row["messages"]]
    for group, questions in heldout.items():
        for question in questions:
            key = normalize(question)
            assert not any(key in text for text in seen), (group, question)


def test_identity_answers_are_short(identity):
    tok = AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))
    lengths = [len(tok(row["messages"][-1]["content"], add_special_tokens=False)["input_ids"]) for row in identity]
    assert 10 <= min(lengths) and max(lengths) <= 64


def test_generator_reproduces_the_committed_files(tmp_path):
    _generator().write(tmp_path)
    for name in ("self_cognition.jsonl", "general_chat.jsonl", "identity_heldout.json"):
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name
