"""Read local dataset files into rows that remember where they came from.

The `datasets` library reads these files too, but it throws the position away: a bad row would surface
as a pyarrow type error or a `KeyError` mid-run, with no line to open. Every problem we report must say
`file:line` so these readers are plain Python (pyarrow only for Parquet) and keep that position with
each row: the physical line for JSONL and CSV (header included), the line where an element starts for
a JSON array, and the row index for Parquet.
"""
from __future__ import annotations

import bisect
import codecs
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
            ".parquet": "parquet"}
UTF8_FIX = "save the file as UTF-8 (e.g. `iconv -f GBK -t UTF-8 in.jsonl > out.jsonl`)"
# A top-level JSON object whose list sits under one of these keys is one example, not a holder of rows:
# {"messages": [...]} is a single chat, {"data": [...]} is a dataset.
ROW_LIST_KEYS = {"messages", "conversations", "history", "chosen", "rejected", "prompt", "completion"}


@dataclass
class Row:
    where: str  # "data.jsonl:12", "data.parquet:row 3", "org/name[train]:row 7"
    value: Any
    pos: int = 0  # the line or row number in `where`, to list problems in file order


class Problems:
    """Every problem of one load, shown up to a limit and counted beyond it (a broken 1M-row file must not
    print a million lines, but the user should know how many there are)."""

    BUFFER = 10_000

    def __init__(self, limit: int):
        self.limit = limit
        self.group = 0  # the source being read: problems are listed source by source, in file order
        self._kept: list[tuple[int, int, int, str]] = []
        self.count = 0

    def add(self, text: str, pos: int = 0) -> None:
        self.count += 1
        # Read errors come before row errors of the same file; sorting puts them back in line order.
        if len(self._kept) < self.BUFFER:
            self._kept.append((self.group, pos, self.count, text))

    def lines(self) -> list[str]:
        shown = [t for *_, t in sorted(self._kept)[: self.limit]]
        extra = self.count - len(shown)
        return shown + ([f"... and {extra} more problem{'s' if extra > 1 else ''}"] if extra else [])


def type_name(v: Any) -> str:
    """JSON's words for Python types: users wrote JSON, not Python."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, (list, tuple)):
        return "list"
    return type(v).__name__


def a_type(v: Any) -> str:
    """'a list', 'an object': the type with its article, for messages."""
    name = type_name(v)
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def read_local(path: Path, label: str, problems: Problems, split: str = "train") -> list[Row]:
    if path.is_dir():
        return read_folder(path, problems, split)
    kind = SUFFIXES.get(path.suffix.lower()) or _sniff(path)
    if kind is None:
        problems.add(f"{label}: unknown file type '{path.suffix}'; use .jsonl, .json, .csv or .parquet")
        return []
    if kind == "jsonl":
        return read_jsonl(path, label, problems)
    if kind == "json":
        return read_json(path, label, problems)
    if kind == "csv":
        return read_csv(path, label, problems, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    return read_parquet(path, label, problems)


def _sniff(path: Path) -> str | None:
    # A file without a known suffix (data.txt, data) is still readable when its content says what it is.
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(codecs.BOM_UTF8).lstrip()
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    return None


def read_folder(folder: Path, problems: Problems, split: str = "train") -> list[Row]:
    """A folder of data files, as `hf download --repo-type dataset` leaves it: the split's files if
    their names say which split they hold (train.jsonl, data/train-00000-of-00001.parquet), else all."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        problems.add(f"{folder}: no data files (.jsonl, .json, .csv, .parquet) in this folder; "
                     "point the dataset path at a data file or at the folder that holds them")
        return []
    named = [p for p in files if split.lower() in p.stem.lower()]
    rows: list[Row] = []
    for p in named or files:
        problems.group += 1
        rows.extend(read_local(p, str(p), problems, split))
    return rows


def read_jsonl(path: Path, label: str, problems: Problems) -> list[Row]:
    rows = []
    offset = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            start = offset
            offset += len(raw)
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw, start = raw[3:], start + 3
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.add(f"{label}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte offset "
                             f"{start + exc.start}); {UTF8_FIX}", lineno)
                continue
            if not text.strip():
                continue
            try:
                rows.append(Row(f"{label}:{lineno}", json.loads(text), lineno))
            except json.JSONDecodeError as exc:
                problems.add(f"{label}:{lineno}: not valid JSON: {exc.msg} (column {exc.colno}); "
                             "each line must hold one complete JSON object", lineno)
    return rows


def _decode(path: Path, label: str, problems: Problems) -> str | None:
    data = path.read_bytes()
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        line = data.count(b"\n", 0, at) + 1
        problems.add(f"{label}:{line}: not UTF-8 text (byte 0x{data[at]:02x} at byte offset {at}); "
                     f"{UTF8_FIX}", line)
        return None


class _Lines:
    """Line number of a character offset, by bisecting the newline positions once computed."""

    def __init__(self, text: str):
        self.newlines = [i for i, c in enumerate(text) if c == "\n"]

    def of(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def read_json(path: Path, label: str, problems: Problems) -> list[Row]:
    text = _decode(path, label, problems)
    if text is None:
        return []
    i = _skip_ws(text, 0)
    if i == len(text):
        return []
    lines = _Lines(text)
    if text[i] == "[":
        return _read_array(text, i, label, lines, problems)
    decoder = json.JSONDecoder()
    try:
        first, end = decoder.raw_decode(text, i)
    except json.JSONDecodeError as exc:
        problems.add(f"{label}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno}); fix the file there",
                     exc.lineno)
        return []
    j = _skip_ws(text, end)
    if j < len(text):
        if isinstance(first, dict) and text[j] == "{":
            # JSON Lines saved under a .json name is common (many hub exports do it): read it as JSONL.
            return read_jsonl(path, label, problems)
        problems.add(f"{label}:{lines.of(j)}: unexpected text after the JSON value; a .json file holds one "
                     "array of rows (or save one object per line as .jsonl)")
        return []
    if not isinstance(first, dict):
        return [Row(f"{label}:{lines.of(i)}", first, lines.of(i))]
    lists = [k for k, v in first.items() if isinstance(v, list)]
    if not lists or any(k in ROW_LIST_KEYS for k in lists):
        return [Row(f"{label}:{lines.of(i)}", first, lines.of(i))]
    if len(lists) > 1:
        problems.add(f"{label}: the top-level object holds several lists ({', '.join(lists)}); keep the rows in "
                     "one list, or write them as a top-level array")
        return []
    return _read_array(text, _value_start(text, i, lists[0], decoder), label, lines, problems)


def _value_start(text: str, i: int, wanted: str, decoder: json.JSONDecoder) -> int:
    """Offset of the value under key `wanted` of the (already validated) object starting at i."""
    i = _skip_ws(text, i + 1)
    while True:
        key, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, _skip_ws(text, i) + 1)  # past ':'
        if key == wanted:
            return i
        _, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, _skip_ws(text, i) + 1)  # past ','


def _read_array(text: str, i: int, label: str, lines: _Lines, problems: Problems) -> list[Row]:
    decoder = json.JSONDecoder()
    rows: list[Row] = []
    i = _skip_ws(text, i + 1)
    if i < len(text) and text[i] == "]":
        return rows
    while True:
        i = _skip_ws(text, i)
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            # After a syntax error the element boundaries are unknown: stop rather than guess.
            problems.add(f"{label}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno}); fix it there "
                         "(rows after it were not checked)", exc.lineno)
            return rows
        rows.append(Row(f"{label}:{lines.of(i)}", value, lines.of(i)))
        i = _skip_ws(text, end)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        if i < len(text) and text[i] == "]":
            return rows
        where = lines.of(min(i, len(text) - 1))
        got = "the end of the file" if i >= len(text) else repr(text[i])
        problems.add(f"{label}:{where}: expected ',' or ']' after the element, found {got}; "
                     "separate rows with commas and close the array with ]", where)
        return rows


def read_csv(path: Path, label: str, problems: Problems, delimiter: str = ",") -> list[Row]:
    text = _decode(path, label, problems)
    if text is None:
        return []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[Row] = []
    try:
        header = next(reader, None)
        if header is None:
            return rows
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            problems.add(f"{label}:1: the header repeats column(s) {', '.join(dupes)}; give each column its own name")
            return rows
        last = reader.line_num
        for record in reader:
            # A quoted field may span lines: the row starts on the line after the previous row ended.
            start, last = last + 1, reader.line_num
            if not record:
                continue
            if len(record) != len(header):
                problems.add(f"{label}:{start}: {len(record)} fields, but the header has {len(header)}; "
                             "quote fields that contain commas or line breaks", start)
                continue
            rows.append(Row(f"{label}:{start}", dict(zip(header, record)), start))
    except csv.Error as exc:
        problems.add(f"{label}:{reader.line_num}: not valid CSV: {exc}; fix the quoting there", reader.line_num)
    return rows


def read_parquet(path: Path, label: str, problems: Problems) -> list[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        problems.add(f"{label}: not a readable Parquet file ({str(exc).splitlines()[0]}); "
                     "write it again with pandas/pyarrow, or convert it to JSONL")
        return []
    return [Row(f"{label}:row {i}", value, i) for i, value in enumerate(table.to_pylist())]
