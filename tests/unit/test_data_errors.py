"""Bad data is reported before training, all at once, each problem as "path:line: problem; fix"."""
import json
import time

import pytest

from wizard.data.load import load_examples
from wizard.errors import DataError, UserError
from wizard.spec import DataSpec


def problems_of(tmp_path, text, name="d.jsonl", task="sft", raw=False, **data):
    p = tmp_path / name
    if raw:
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_examples(DataSpec(train=[str(p)], **data), task=task)
    assert isinstance(err.value, UserError) and err.value.exit_code == 2
    return p, err.value.problems


def jl(*rows):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


OK = {"instruction": "q", "output": "a"}
CHAT_OK = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def test_malformed_json_line_carries_the_parser_message(tmp_path):
    p, probs = problems_of(tmp_path, jl(OK, OK, '{"instruction": "q" "output": "a"}', OK))
    assert probs == [f"{p}:3: not valid JSON: Expecting ',' delimiter (column 21); "
                     "each line must hold one complete JSON object"]


def test_malformed_json_array_names_the_line(tmp_path):
    text = '[\n  {"instruction": "q", "output": "a"},\n  {"instruction": "q", "output": "a",}\n]\n'
    p, probs = problems_of(tmp_path, text, name="d.json")
    assert len(probs) == 1 and probs[0].startswith(f"{p}:3: not valid JSON: ")


def test_json_array_missing_comma(tmp_path):
    text = '[\n  {"instruction": "q", "output": "a"}\n  {"instruction": "q", "output": "a"}\n]\n'
    p, probs = problems_of(tmp_path, text, name="d.json")
    assert probs[0].startswith(f"{p}:3: expected ',' or ']'")


def test_row_that_is_not_an_object(tmp_path):
    p, probs = problems_of(tmp_path, jl(OK, '["q", "a"]', '"just text"'))
    assert probs[0].startswith(f"{p}:2: the row is a list, not an object")
    assert probs[1].startswith(f"{p}:3: the row is a string, not an object")


def test_missing_field_names_it_and_the_format_needs(tmp_path):
    p, probs = problems_of(tmp_path, jl(OK, {"instruction": "q", "input": "x", "outptu": "a"}), format="alpaca")
    assert probs == [f"{p}:2: missing field 'output'; the alpaca format needs instruction, output (optional: input, "
                     "system, history): add it, or map your column to it with `columns:`"]


@pytest.mark.parametrize("content, word", [([{"type": "text", "text": "hi"}], "list"), (42, "number")])
def test_wrong_type_of_content(tmp_path, content, word):
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": content}]}
    p, probs = problems_of(tmp_path, jl(CHAT_OK, bad))
    assert probs == [f"{p}:2: messages[1].content is a {word}, expected a string; write the text as one string"]


def test_empty_assistant_turn(tmp_path):
    bad = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "  "}]}
    p, probs = problems_of(tmp_path, jl(bad))
    assert probs == [f"{p}:1: conversations[1]: empty assistant turn; write the answer, or drop the row"]


def test_empty_alpaca_output(tmp_path):
    p, probs = problems_of(tmp_path, jl(OK, {"instruction": "q", "output": ""}))
    assert probs[0].startswith(f"{p}:2: 'output' is empty")


def test_conversation_not_ending_with_the_assistant(tmp_path):
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                        {"role": "user", "content": "and?"}]}
    p, probs = problems_of(tmp_path, jl(CHAT_OK, CHAT_OK, bad))
    assert len(probs) == 1 and probs[0].startswith(f"{p}:3: 'messages' ends with a user turn, not an assistant turn")


def test_unknown_roles(tmp_path):
    bad_msg = {"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]}
    p, probs = problems_of(tmp_path, jl(bad_msg))
    assert probs[0] == f"{p}:1: messages[0]: unknown role 'tool'; use one of system, user, assistant"
    bad_sg = {"conversations": [{"from": "observation", "value": "x"}, {"from": "gpt", "value": "y"}]}
    p, probs = problems_of(tmp_path, jl(bad_sg), name="sg.jsonl")
    assert probs[0] == f"{p}:1: conversations[0]: unknown role 'observation'; use one of human, gpt, system"


def test_bad_encoding_in_jsonl_names_line_and_byte(tmp_path):
    text = (jl(OK) + '{"instruction": "caf').encode() + b"\xe9" + b'", "output": "a"}\n'
    p, probs = problems_of(tmp_path, text, raw=True)
    offset = len(jl(OK).encode()) + len('{"instruction": "caf')
    assert probs == [f"{p}:2: not UTF-8 text (byte 0xe9 at byte offset {offset}); save the file as UTF-8 "
                     "(e.g. `iconv -f GBK -t UTF-8 in.jsonl > out.jsonl`)"]


def test_bad_encoding_in_csv(tmp_path):
    text = b"instruction,output\nq,a\n" + "你好,hello\n".encode("gbk")
    p, probs = problems_of(tmp_path, text, name="d.csv", raw=True)
    assert len(probs) == 1 and probs[0].startswith(f"{p}:3: not UTF-8 text (byte 0xc4 at byte offset 23)")


@pytest.mark.parametrize("name, text", [("e.jsonl", ""), ("e.jsonl", "\n\n"), ("e.json", "[]"),
                                        ("e.csv", "instruction,output\n")])
def test_empty_file(tmp_path, name, text):
    p, probs = problems_of(tmp_path, text, name=name)
    assert probs == [f"{p}: the file is empty (no rows); point data.train at a dataset with rows"]


def test_csv_row_with_too_many_fields(tmp_path):
    p, probs = problems_of(tmp_path, "instruction,output\nq,a\nsay hi, please,hi\n", name="d.csv")
    assert probs[0].startswith(f"{p}:3: 3 fields, but the header has 2; quote fields")


def test_undetectable_format_lists_keys_formats_and_fix(tmp_path):
    p, probs = problems_of(tmp_path, jl({"question": "q", "answer": "a"}))
    assert len(probs) == 1
    msg = probs[0]
    assert msg.startswith(f"{p}: cannot tell the dataset format from its keys (answer, question)")
    for word in ("alpaca (instruction, output)", "sharegpt (conversations)", "messages", "query_response",
                 "prompt_completion", "columns: {your_key: instruction", "format:"):
        assert word in msg


def test_named_format_that_does_not_fit(tmp_path):
    p, probs = problems_of(tmp_path, jl(CHAT_OK), format="alpaca")
    assert probs[0].startswith(f"{p}: format alpaca needs alpaca (instruction, output")
    assert "set format: messages" in probs[0]


def test_format_of_the_other_task(tmp_path):
    p, probs = problems_of(tmp_path, jl(OK), format="preference")
    assert probs[0].startswith(f"{p}: format preference is for task dpo, not sft") and "set task: dpo" in probs[0]


def test_columns_naming_a_key_no_row_has(tmp_path):
    p = tmp_path / "qa.jsonl"
    p.write_text(jl({"question": "q", "answer": "a"}))
    with pytest.raises(DataError) as err:
        load_examples(DataSpec(train=[{"path": str(p), "columns": {"questoin": "instruction", "answer": "output"}}]))
    assert err.value.problems == [f"{p}: columns maps 'questoin', but no row has that key (keys found: answer, "
                                  "question); fix the names on the left of `columns:`"]


def test_dpo_task_on_sft_data(tmp_path):
    p, probs = problems_of(tmp_path, jl(OK), task="dpo")
    assert probs[0].startswith(f"{p}: this is SFT data (format alpaca: keys instruction, output), but task is dpo")
    assert "prompt/chosen/rejected" in probs[0] and "set task: sft" in probs[0]


@pytest.mark.parametrize("row", [{"prompt": "p", "chosen": "c", "rejected": "r"},
                                 {"conversations": [{"from": "human", "value": "p"}], "chosen": "c", "rejected": "r"}])
def test_sft_task_on_preference_data(tmp_path, row):
    p, probs = problems_of(tmp_path, jl(row), task="sft")
    assert probs[0].startswith(f"{p}: this is preference data") and "set task: dpo" in probs[0]


def test_preference_row_problems(tmp_path):
    rows = jl({"prompt": "p", "chosen": "c", "rejected": "r"},
              {"prompt": "p", "chosen": "", "rejected": "r"},
              {"prompt": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "a"}],
               "chosen": "c", "rejected": "r"},
              {"prompt": "p", "chosen": "c"},
              {"messages": [{"role": "user", "content": "p"}], "rejected_response": "r"})
    p, probs = problems_of(tmp_path, rows, task="dpo")
    assert probs[0].startswith(f"{p}:2: 'chosen' is empty")
    assert probs[1].startswith(f"{p}:3: the prompt ends with an assistant turn; it must end with the user turn")
    assert probs[2].startswith(f"{p}:4: missing field 'rejected'; the prompt/chosen/rejected format needs prompt, "
                               "chosen, rejected")
    # A row of another format in the same file is judged by the file's format.
    assert probs[3].startswith(f"{p}:5: missing field 'prompt'")


def test_missing_prompt_is_reported_once(tmp_path):
    p, probs = problems_of(tmp_path, jl({"prompt": "p", "chosen": "c", "rejected": "r"},
                                        {"chosen": "c", "rejected": "r", "prompt": None}), task="dpo")
    assert probs == [f"{p}:2: missing field 'prompt'; the prompt/chosen/rejected format needs prompt, chosen, "
                     "rejected (optional: system): add it, or map your column to it with `columns:`"]


def test_messages_rejected_response_must_end_with_the_chosen_answer(tmp_path):
    rows = jl({"messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}],
               "rejected_response": "r"},
              {"messages": [{"role": "user", "content": "p"}], "rejected_response": "r"},
              {"messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}],
               "rejected_response": ["r", "s"]})
    p, probs = problems_of(tmp_path, rows, task="dpo")
    assert probs[0].startswith(f"{p}:2: 'messages' ends with a user turn, not an assistant turn")
    assert probs[1].startswith(f"{p}:3: 'rejected_response' is a list, expected a string")
    assert len(probs) == 2


def test_problems_from_several_sources_come_at_once_in_file_order(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(jl(OK, {"instruction": "q", "output": ""}, "{oops", OK))
    b.write_text(jl({"messages": [{"role": "user", "content": "x"}]}))
    with pytest.raises(DataError) as err:
        load_examples(DataSpec(train=[str(a)], eval=[str(b)]))
    probs = err.value.problems
    assert [x.split(": ")[0] for x in probs] == [f"{a}:2", f"{a}:3", f"{b}:1"]


def test_max_errors_then_and_n_more(tmp_path):
    rows = jl(*[{"instruction": "q", "output": ""} for _ in range(30)])
    p, probs = problems_of(tmp_path, rows, max_errors=5)
    assert len(probs) == 6 and probs[-1] == "... and 25 more problems"
    assert probs[0].startswith(f"{p}:1: ") and probs[4].startswith(f"{p}:5: ")


def test_missing_local_file(tmp_path):
    with pytest.raises(DataError) as err:
        load_examples(DataSpec(train=[str(tmp_path / "nope.jsonl")]))
    assert err.value.problems[0].startswith(f"{tmp_path / 'nope.jsonl'}: no such file")


# ------------------------------------------------------------------ hubs without network

def hub_error(spec, budget_s):
    t0 = time.time()
    with pytest.raises(DataError) as err:
        load_examples(spec)
    elapsed = time.time() - t0
    assert elapsed < budget_s, f"took {elapsed:.1f} s"
    text = str(err.value)
    assert "Traceback" not in text
    return text


def test_hub_id_offline_fails_fast_with_a_local_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = hub_error(DataSpec(train=["tune-wizard-tests/no-such-dataset#10"]), 5)
    assert text.startswith("tune-wizard-tests/no-such-dataset: not a local file, and the Hugging Face hub could not "
                           "be reached")
    assert "hf download tune-wizard-tests/no-such-dataset --repo-type dataset" in text
    assert ".jsonl" in text


def test_hub_unreachable_without_offline_flag(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    text = hub_error(DataSpec(train=["tune-wizard-tests/no-such-dataset"]), 10)
    assert "could not be reached (127.0.0.1:" in text and "local copy" in text


def test_hub_with_the_default_endpoint_returns_within_20s(monkeypatch):
    # Whatever this machine's network does (none, or a real hub answering "not found"), the answer is a
    # DataError naming the id, not a hang or a traceback.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    text = hub_error(DataSpec(train=["tune-wizard-tests/no-such-dataset"]), 20)
    assert text.startswith("tune-wizard-tests/no-such-dataset: ") and "local copy" in text


def test_modelscope_unreachable(monkeypatch):
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "http://127.0.0.1:9")
    text = hub_error(DataSpec(train=["tune-wizard-tests/no-such-dataset"]), 10)
    assert "the ModelScope hub could not be reached" in text
    assert "modelscope download --dataset tune-wizard-tests/no-such-dataset" in text
