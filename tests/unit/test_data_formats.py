"""Every format is detected from its keys (or named) and normalised to the engine's examples."""
import json

import pytest

from wizard.data.load import DataReport, load_examples
from wizard.spec import DataSpec


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def load(tmp_path, rows, task="sft", name="d.jsonl", **data):
    spec = DataSpec(train=[write_jsonl(tmp_path / name, rows)], **data)
    return load_examples(spec, task=task, seed=42)


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def S(text):
    return {"role": "system", "content": text}


# ------------------------------------------------------------------ SFT

def test_alpaca_with_input_system_and_history(tmp_path):
    rows = [{"instruction": "Translate", "input": "bonjour", "output": "hello"},
            {"instruction": "And this?", "output": "goodbye", "system": "You translate.",
             "history": [["Translate bonjour", "hello"]]}]
    train, evals, report = load(tmp_path, rows)
    assert train[0]["messages"] == [U("Translate\nbonjour"), A("hello")]
    assert train[1]["messages"] == [S("You translate."), U("Translate bonjour"), A("hello"), U("And this?"), A("goodbye")]
    assert train[0]["where"].endswith("d.jsonl:1") and train[1]["where"].endswith("d.jsonl:2")
    assert evals == [] and isinstance(report, DataReport)
    src = report.sources[0]
    assert (src.format, src.rows_read, src.rows_used, src.hub, src.sample) == ("alpaca", 2, 2, None, None)
    assert report.train_rows == 2 and report.eval_rows == 0


def test_sharegpt_roles_and_system(tmp_path):
    rows = [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
                               {"from": "gpt", "value": "Hello"}, {"from": "user", "value": "Bye"},
                               {"from": "assistant", "value": "Bye!"}]},
            {"system": "Top-level system", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}]
    train, _, report = load(tmp_path, rows)
    assert train[0]["messages"] == [S("Be brief."), U("Hi"), A("Hello"), U("Bye"), A("Bye!")]
    assert train[1]["messages"] == [S("Top-level system"), U("Q"), A("A")]
    assert report.sources[0].format == "sharegpt"


def test_openai_messages_with_system(tmp_path):
    msgs = [S("You are Tuna."), U("Who are you?"), A("I am Tuna.")]
    train, _, report = load(tmp_path, [{"messages": msgs}])
    assert train[0]["messages"] == msgs and report.sources[0].format == "messages"


def test_query_response_with_history_like_ms_swift(tmp_path):
    rows = [{"query": "And 3+3?", "response": "6", "history": [["2+2?", "4"]], "system": "Math tutor"}]
    train, _, report = load(tmp_path, rows)
    assert train[0]["messages"] == [S("Math tutor"), U("2+2?"), A("4"), U("And 3+3?"), A("6")]
    assert report.sources[0].format == "query_response"


def test_prompt_completion_strings_and_conversational(tmp_path):
    rows = [{"prompt": "Capital of France?", "completion": "Paris"},
            {"prompt": [S("Geo"), U("Capital of Spain?")], "completion": [A("Madrid")]}]
    train, _, report = load(tmp_path, rows)
    assert train[0]["messages"] == [U("Capital of France?"), A("Paris")]
    assert train[1]["messages"] == [S("Geo"), U("Capital of Spain?"), A("Madrid")]
    assert report.sources[0].format == "prompt_completion"


def test_data_system_is_prepended_only_where_there_is_none(tmp_path):
    rows = [{"messages": [U("hi"), A("hello")]}, {"messages": [S("own"), U("hi"), A("hello")]}]
    train, _, _ = load(tmp_path, rows, system="You are Tuna.")
    assert train[0]["messages"][0] == S("You are Tuna.")
    assert train[1]["messages"][0] == S("own") and len(train[1]["messages"]) == 3


def test_named_format_is_used_without_detection(tmp_path):
    rows = [{"query": "hi", "response": "hello", "instruction": "ignored", "output": "ignored"}]
    train, _, report = load(tmp_path, rows, format="query_response")
    assert train[0]["messages"] == [U("hi"), A("hello")] and report.sources[0].format == "query_response"


def test_column_mapping_renames_before_detection(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "2+2?", "answer": "4"}])
    spec = DataSpec(train=[{"path": path, "columns": {"question": "instruction", "answer": "output"}}])
    train, _, report = load_examples(spec)
    assert train[0]["messages"] == [U("2+2?"), A("4")] and report.sources[0].format == "alpaca"


def test_csv_cells_holding_json_lists(tmp_path):
    p = tmp_path / "chat.csv"
    p.write_text('messages\n"[{""role"": ""user"", ""content"": ""hi""}, {""role"": ""assistant"", ""content"": ""yo""}]"\n')
    train, _, _ = load_examples(DataSpec(train=[str(p)]))
    assert train[0]["messages"] == [U("hi"), A("yo")] and train[0]["where"] == f"{p}:2"


def rows_n(n):
    return [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(n)]


def test_sampling_is_deterministic_per_seed(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", rows_n(50))
    spec = DataSpec(train=[f"{path}#10"])
    a, _, report = load_examples(spec, seed=1)
    b, _, _ = load_examples(spec, seed=1)
    c, _, _ = load_examples(spec, seed=2)
    assert len(a) == 10 and a == b and a != c
    assert len({ex["where"] for ex in a}) == 10
    s = report.sources[0]
    assert (s.rows_read, s.rows_used, s.sample) == (50, 10, 10)


def test_sampling_more_rows_than_there_are_repeats_them(tmp_path):
    path = write_jsonl(tmp_path / "small.jsonl", rows_n(3))
    train, _, report = load_examples(DataSpec(train=[f"{path}#7"]), seed=0)
    assert len(train) == 7 and {ex["where"] for ex in train} == {f"{path}:{i}" for i in (1, 2, 3)}
    assert any("asked for 7 rows but it has 3" in w for w in report.warnings)


def test_two_sources_are_mixed(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", rows_n(4))
    b = write_jsonl(tmp_path / "b.jsonl", [{"messages": [U("hi"), A("hello")]}] * 2)
    train, _, report = load_examples(DataSpec(train=[a, f"{b}#1"]))
    assert len(train) == 5 and report.train_rows == 5
    assert [s.format for s in report.sources] == ["alpaca", "messages"]
    assert train[-1]["where"].startswith(b)


def test_eval_split_is_seeded_and_disjoint(tmp_path):
    rows = rows_n(40)
    train, evals, report = load(tmp_path, rows, eval_split=0.1)
    assert len(evals) == 4 and len(train) == 36
    assert not {e["where"] for e in evals} & {t["where"] for t in train}
    train2, evals2, _ = load(tmp_path, rows, eval_split=0.1)
    assert evals2 == evals and train2 == train
    assert (report.train_rows, report.eval_rows) == (36, 4) and report.eval_from.startswith("eval_split")


def test_eval_split_takes_at_least_one_row(tmp_path):
    train, evals, _ = load(tmp_path, rows_n(3), eval_split=0.01)
    assert len(evals) == 1 and len(train) == 2


def test_eval_sources_are_loaded_the_same_way(tmp_path):
    tr = write_jsonl(tmp_path / "train.jsonl", rows_n(5))
    ev = write_jsonl(tmp_path / "eval.jsonl", [{"query": "x", "response": "y"}])
    train, evals, report = load_examples(DataSpec(train=[tr], eval=[ev], eval_split=0.5))
    assert len(train) == 5 and evals[0]["messages"] == [U("x"), A("y")]
    assert report.eval_from == "eval sources" and [s.role for s in report.sources] == ["train", "eval"]


# ------------------------------------------------------------------ DPO

def test_prompt_chosen_rejected_strings(tmp_path):
    rows = [{"prompt": "Say hi", "chosen": "Hello!", "rejected": "No."}]
    train, _, report = load(tmp_path, rows, task="dpo", system="Be kind.")
    ex = train[0]
    assert ex["prompt"] == [S("Be kind."), U("Say hi")]
    assert ex["chosen"] == [A("Hello!")] and ex["rejected"] == [A("No.")]
    assert report.sources[0].format == "prompt/chosen/rejected"


def test_prompt_chosen_rejected_message_lists(tmp_path):
    rows = [{"prompt": [S("sys"), U("Say hi")], "chosen": [A("Hello!")], "rejected": [A("No.")]}]
    train, _, _ = load(tmp_path, rows, task="dpo")
    assert train[0]["prompt"] == [S("sys"), U("Say hi")] and train[0]["chosen"] == [A("Hello!")]


def test_messages_with_rejected_response_like_ms_swift(tmp_path):
    rows = [{"messages": [U("2+2?"), A("4"), U("and 3+3?"), A("6")], "rejected_response": "7"}]
    train, _, report = load(tmp_path, rows, task="dpo")
    assert train[0]["prompt"] == [U("2+2?"), A("4"), U("and 3+3?")]
    assert train[0]["chosen"] == [A("6")] and train[0]["rejected"] == [A("7")]
    assert report.sources[0].format == "messages+rejected_response"


def test_sharegpt_conversations_with_chosen_rejected(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "Tell a joke"}],
             "chosen": {"from": "gpt", "value": "Why did the chicken..."}, "rejected": "No."}]
    train, _, report = load(tmp_path, rows, task="dpo")
    assert train[0]["prompt"] == [U("Tell a joke")]
    assert train[0]["chosen"] == [A("Why did the chicken...")] and train[0]["rejected"] == [A("No.")]
    assert report.sources[0].format == "sharegpt+chosen/rejected"


def test_implicit_prompt_chosen_rejected_conversations(tmp_path):
    rows = [{"chosen": [U("Hi"), A("Hello, friend")], "rejected": [U("Hi"), A("Go away")]}]
    train, _, report = load(tmp_path, rows, task="dpo")
    assert train[0]["prompt"] == [U("Hi")] and train[0]["rejected"] == [A("Go away")]
    assert report.sources[0].format == "chosen/rejected"


def test_alpaca_preference_and_named_preference(tmp_path):
    rows = [{"instruction": "Greet", "input": "Bob", "chosen": "Hi Bob", "rejected": "..."}]
    train, _, report = load(tmp_path, rows, task="dpo", format="preference")
    assert train[0]["prompt"] == [U("Greet\nBob")] and report.sources[0].format == "alpaca+chosen/rejected"


def test_sft_on_messages_with_rejected_response_trains_the_chosen_side(tmp_path):
    rows = [{"messages": [U("2+2?"), A("4")], "rejected_response": "5"}]
    train, _, report = load(tmp_path, rows, task="sft")
    assert train[0]["messages"] == [U("2+2?"), A("4")]
    assert any("ignores rejected_response" in w for w in report.warnings)


@pytest.mark.parametrize("task", ["sft", "dpo"])
def test_report_lines_summarise(tmp_path, task):
    rows = ([{"instruction": "a", "output": "b"}] if task == "sft"
            else [{"prompt": "a", "chosen": "b", "rejected": "c"}])
    _, _, report = load(tmp_path, rows, task=task)
    text = "\n".join(report.lines())
    assert "format" in text and "1 rows read" in text and report.to_dict()["task"] == task


def test_text_that_looks_like_json_stays_text(tmp_path):
    rows = [{"prompt": "[3, 1, 2]", "completion": "[1, 2, 3]"}]
    train, _, _ = load(tmp_path, rows)
    assert train[0]["messages"] == [U("[3, 1, 2]"), A("[1, 2, 3]")]
