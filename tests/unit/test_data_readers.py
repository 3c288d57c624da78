"""Each local file type is read with the position of every row: JSONL and CSV physical lines, the line
where a JSON array element starts, the Parquet row index."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wizard.data.load import load_examples
from wizard.data.readers import Problems, read_local
from wizard.errors import DataError
from wizard.spec import DataSpec

ROWS = [{"instruction": "What is 2+2?", "output": "4"},
        {"instruction": "Name a colour.", "input": "", "output": "Blue"},
        {"instruction": "Translate", "input": "bonjour", "output": "hello"}]


def read(path, split="train"):
    problems = Problems(20)
    rows = read_local(path, str(path), problems, split)
    return rows, problems.lines()


def test_jsonl_keeps_physical_lines_and_skips_blank_ones(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n   \n" + json.dumps(ROWS[2]) + "\n",
                 encoding="utf-8")
    rows, problems = read(p)
    assert problems == []
    assert [r.where for r in rows] == [f"{p}:1", f"{p}:3", f"{p}:5"]
    assert [r.value for r in rows] == ROWS


def test_jsonl_with_utf8_bom_and_crlf(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS).encode())
    rows, problems = read(p)
    assert problems == [] and [r.value for r in rows] == ROWS


def test_json_array_reports_the_line_each_element_starts_on(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    rows, problems = read(p)
    assert problems == []
    lines = p.read_text().splitlines()
    for r in rows:
        line = int(r.where.rsplit(":", 1)[1])
        assert lines[line - 1].strip() == "{"
        assert json.dumps(r.value["instruction"]) in lines[line]
    assert [r.value for r in rows] == ROWS


def test_json_object_holding_one_list(tmp_path):
    p = tmp_path / "wrapped.json"
    p.write_text('{\n  "version": 2,\n  "data": [\n    {"instruction": "a", "output": "b"},\n'
                 '    {"instruction": "c", "output": "d"}\n  ]\n}\n', encoding="utf-8")
    rows, problems = read(p)
    assert problems == []
    assert [(r.where, r.value["output"]) for r in rows] == [(f"{p}:4", "b"), (f"{p}:5", "d")]


def test_json_single_example_object_is_one_row(tmp_path):
    p = tmp_path / "one.json"
    p.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}')
    rows, problems = read(p)
    assert problems == [] and len(rows) == 1 and rows[0].where == f"{p}:1"


def test_json_lines_saved_as_json_are_read_as_jsonl(tmp_path):
    p = tmp_path / "actually_lines.json"
    p.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n", encoding="utf-8")
    rows, problems = read(p)
    assert problems == [] and [r.where for r in rows] == [f"{p}:1", f"{p}:2", f"{p}:3"]


def test_csv_lines_count_the_header_and_multiline_fields(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('instruction,input,output\n"What is 2+2?",,4\n"Write a poem","about the sea","Waves\nroll\nin"\n'
                 'Name a colour.,,Blue\n', encoding="utf-8")
    rows, problems = read(p)
    assert problems == []
    assert [r.where for r in rows] == [f"{p}:2", f"{p}:3", f"{p}:6"]
    assert rows[1].value["output"] == "Waves\nroll\nin"


def test_tsv(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_text("query\tresponse\nhi\thello\n", encoding="utf-8")
    rows, problems = read(p)
    assert problems == [] and rows[0].value == {"query": "hi", "response": "hello"}


def test_parquet_rows_are_named_by_index(tmp_path):
    p = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([{"query": f"q{i}", "response": f"a{i}"} for i in range(3)]), p)
    rows, problems = read(p)
    assert problems == []
    assert [r.where for r in rows] == [f"{p}:row 0", f"{p}:row 1", f"{p}:row 2"]
    assert rows[2].value == {"query": "q2", "response": "a2"}


def test_parquet_with_nested_messages_loads(tmp_path):
    p = tmp_path / "chat.parquet"
    pq.write_table(pa.Table.from_pylist([{"messages": [{"role": "user", "content": "hi"},
                                                       {"role": "assistant", "content": "hello"}]}]), p)
    train, _, report = load_examples(DataSpec(train=[str(p)]))
    assert train[0]["messages"][1] == {"role": "assistant", "content": "hello"}
    assert train[0]["where"] == f"{p}:row 0" and report.sources[0].format == "messages"


def test_unreadable_parquet_is_a_data_error(tmp_path):
    p = tmp_path / "broken.parquet"
    p.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError) as err:
        load_examples(DataSpec(train=[str(p)]))
    assert f"{p}: not a readable Parquet file" in str(err.value)


def test_folder_prefers_the_split_files(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    (tmp_path / "data" / "test.jsonl").write_text(json.dumps(ROWS[1]) + "\n")
    (tmp_path / "README.md").write_text("# a dataset card\n")
    rows, problems = read(tmp_path)
    assert problems == [] and [r.value for r in rows] == [ROWS[0]]
    rows, _ = read(tmp_path, split="test")
    assert [r.value for r in rows] == [ROWS[1]]


def test_unknown_suffix_is_sniffed_from_content(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text(json.dumps(ROWS[0]) + "\n")
    rows, problems = read(p)
    assert problems == [] and rows[0].value == ROWS[0]
    q = tmp_path / "notes.txt"
    q.write_text("just some prose\n")
    _, problems = read(q)
    assert problems and "unknown file type" in problems[0]


def test_each_file_type_gives_the_same_examples(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in ROWS))
    js = tmp_path / "a.json"
    js.write_text(json.dumps(ROWS))
    csvf = tmp_path / "a.csv"
    csvf.write_text("instruction,input,output\n" + "".join(
        f'"{r["instruction"]}","{r.get("input", "")}","{r["output"]}"\n' for r in ROWS))
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist([{"input": "", **r} for r in ROWS]), parquet)
    results = []
    for p in (jsonl, js, csvf, parquet):
        train, _, report = load_examples(DataSpec(train=[str(p)]))
        assert report.sources[0].format == "alpaca" and report.sources[0].rows_read == 3
        results.append([ex["messages"] for ex in train])
    assert all(r == results[0] for r in results)
    assert results[0][2][0] == {"role": "user", "content": "Translate\nbonjour"}
