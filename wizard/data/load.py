"""Load a run's datasets: read every source, detect its format, check every row, return examples.

    train, evals, report = load_examples(spec.data, task="sft", seed=spec.train.seed)

Nothing is trained on until every row of every source has been checked: all problems (up to
data.max_errors) come back in one DataError, each as "path:line: problem; fix".
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wizard.data.formats import DPO, NAMED, SFT, Format, RowError, detect, known_formats
from wizard.data.hub import load_hub, looks_like_hub_id, sample_indices
from wizard.data.readers import Problems, Row, a_type, read_local
from wizard.errors import DataError
from wizard.spec import fields

DETECT_ROWS = 50  # rows whose keys decide the format (optional fields may be absent from the first one)


@dataclass
class SourceReport:
    path: str
    role: str  # "train" or "eval"
    format: str  # the detected (or named) format, e.g. "alpaca", "messages+rejected_response"
    hub: str | None  # None for a local file, else "huggingface" / "modelscope"
    rows_read: int  # rows in the file (or the hub split)
    rows_used: int  # examples this source gives
    sample: int | None = None  # N of `path#N`, when sampled


@dataclass
class DataReport:
    task: str
    sources: list[SourceReport] = field(default_factory=list)
    train_rows: int = 0
    eval_rows: int = 0
    eval_from: str = "none"  # "none", "eval sources", or "eval_split 0.05 of train"
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        out = []
        for s in self.sources:
            sampled = f", sampled #{s.sample}" if s.sample else ""
            where = f" ({s.hub})" if s.hub else ""
            out.append(f"{s.role}: {s.path}{where}: format {s.format}, {s.rows_read} rows read, "
                       f"{s.rows_used} used{sampled}")
        out.append(f"total: {self.train_rows} train, {self.eval_rows} eval (eval: {self.eval_from})")
        out += [f"warning: {w}" for w in self.warnings]
        return out


def load_examples(data_spec, task: str = "sft", seed: int = 42) -> tuple[list[dict], list[dict], DataReport]:
    if task not in fields.choices("task"):
        raise ValueError(f"task must be one of {', '.join(fields.choices('task'))}, not {task!r}")
    problems = Problems(data_spec.max_errors)
    report = DataReport(task=task)
    train: list[dict] = []
    evals: list[dict] = []
    for role, sources, out in (("train", data_spec.train, train), ("eval", data_spec.eval, evals)):
        for src in sources:
            problems.group += 1
            out.extend(_load_source(src, role, data_spec, task, seed, problems, report))
    if problems.count:
        raise DataError(problems.lines(), hint="fix the rows named above, then check again with "
                                               "`tune-wizard validate SPEC`")
    if data_spec.eval:
        report.eval_from = "eval sources"
    elif data_spec.eval_split > 0:
        train, evals = _split(train, data_spec.eval_split, seed, report)
    report.train_rows, report.eval_rows = len(train), len(evals)
    return train, evals, report


def eval_count(rows: int, share: float) -> int:
    """The rows eval_split `share` holds out of `rows` (at least one, never all); 0 without a split."""
    if share <= 0 or rows < 2:
        return 0
    return min(rows - 1, max(1, round(rows * share)))


def _split(train: list[dict], share: float, seed: int, report: DataReport) -> tuple[list[dict], list[dict]]:
    if len(train) < 2:
        report.warnings.append(f"eval_split {share}: only {len(train)} training row, so no eval split was made")
        return train, []
    n_eval = eval_count(len(train), share)
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:n_eval])
    report.eval_from = f"eval_split {share} of train"
    # Both keep file order: the trainer shuffles anyway, and a stable order makes runs easy to compare.
    return ([ex for i, ex in enumerate(train) if i not in chosen],
            [ex for i, ex in enumerate(train) if i in chosen])


def _read(src, role: str, seed: int, problems: Problems) -> tuple[list[Row], int, str | None, bool]:
    """(rows, rows before sampling, hub or None, already sampled)."""
    path = Path(src.path).expanduser()
    if path.exists() or src.hub == "local" or not looks_like_hub_id(src.path):
        if not path.exists():
            problems.add(f"{src.path}: no such file (data.{role}); check the path (relative paths are "
                         "read from the spec's folder, then the working directory)")
            return [], 0, None, False
        rows = read_local(path, src.path, problems, src.split)
        return rows, len(rows), None, False
    try:
        rows, n, hub = load_hub(src, seed, problems)
    except DataError as exc:
        for p in exc.problems:
            problems.add(p)
        return [], 0, None, True
    return rows, n, hub, True


def _load_source(src, role: str, data_spec, task: str, seed: int, problems: Problems,
                 report: DataReport) -> list[dict]:
    before = problems.count
    rows, n_read, hub, sampled = _read(src, role, seed, problems)
    if problems.count > before and not rows:
        return []
    if not rows:
        what = "the dataset split has no rows" if hub else "the file is empty (no rows)"
        problems.add(f"{src.path}: {what}; point data.{role} at a dataset with rows")
        return []

    dicts: list[Row] = []
    for row in rows:
        if isinstance(row.value, dict):
            dicts.append(row)
        else:
            problems.add(f"{row.where}: the row is {a_type(row.value)}, not an object; each row must be "
                         "an object such as {\"instruction\": ..., \"output\": ...}", row.pos)
    if not dicts:
        return []
    if src.columns:
        dicts = _rename(dicts, src, problems)
        if dicts is None:
            return []

    keys = set().union(*(r.value.keys() for r in dicts[:DETECT_ROWS]))
    fmt = _choose_format(src, data_spec, task, keys, report, problems)
    if fmt is None:
        return []

    examples = []
    for row in dicts:
        try:
            ex = fmt.to_example(row.value)
        except RowError as err:
            for p in err.problems:
                problems.add(f"{row.where}: {p}", row.pos)
            continue
        if data_spec.system:
            _add_system(ex, data_spec.system)
        ex["where"] = row.where
        examples.append(ex)

    if src.sample is not None and not sampled:
        idx = sample_indices(len(examples), src.sample, seed)
        examples = [dict(examples[i]) for i in idx]
    if src.sample is not None and src.sample > n_read:
        report.warnings.append(f"{src.path}#{src.sample}: asked for {src.sample} rows but it has {n_read}; "
                               f"rows repeat to make up {src.sample}")
    report.sources.append(SourceReport(src.path, role, fmt.name, hub, n_read, len(examples), src.sample))
    return examples


def _rename(rows: list[Row], src, problems: Problems) -> list[Row] | None:
    present = set().union(*(r.value.keys() for r in rows))
    missing = [k for k in src.columns if k not in present]
    if missing:
        problems.add(f"{src.path}: columns maps {', '.join(repr(k) for k in missing)}, but no row has that key "
                     f"(keys found: {', '.join(sorted(present))}); fix the names on the left of `columns:`")
        return None
    return [Row(r.where, {src.columns.get(k, k): v for k, v in r.value.items()}, r.pos) for r in rows]


def _choose_format(src, data_spec, task: str, keys: set[str], report: DataReport,
                   problems: Problems) -> Format | None:
    named = src.format if src.format != "auto" else data_spec.format
    found = ", ".join(sorted(keys))
    fix_cols = "map your columns with `columns: {your_key: instruction, ...}` on the data source"
    if named != "auto":
        candidates = NAMED[task].get(named)
        if candidates is None:
            other = "dpo" if task == "sft" else "sft"
            problems.add(f"{src.path}: format {named} is for task {other}, not {task}; for task {task} use one "
                         f"of auto, {', '.join(NAMED[task])}, or set task: {other}")
            return None
        table = SFT if task == "sft" else DPO
        fmt = next((table[c] for c in candidates if set(table[c].needs) <= keys), None)
        if fmt is None:
            auto, _ = detect(keys, task)
            alt = f"set format: {_spec_name(auto)} (what the keys look like), or " if auto else ""
            needs = " or ".join(f"{table[c].name} ({table[c].describe()})" for c in candidates)
            problems.add(f"{src.path}: format {named} needs {needs}, but the rows have keys {found}; {alt}{fix_cols}")
        return fmt

    fmt, other = detect(keys, task)
    if fmt is not None:
        if task == "sft" and other is not None:
            report.warnings.append(f"{src.path}: preference data ({other.name}); task sft trains on the chosen "
                                   "conversation and ignores rejected_response")
        return fmt
    if other is not None:
        if task == "dpo":
            problems.add(f"{src.path}: this is SFT data (format {other.name}: keys {found}), but task is dpo, which "
                         f"needs preference pairs: {known_formats('dpo')}; use a preference dataset, or set task: sft")
        else:
            problems.add(f"{src.path}: this is preference data (format {other.name}: keys {found}), but task is sft; "
                         "set task: dpo, or use SFT data (e.g. messages or alpaca rows)")
        return None
    problems.add(f"{src.path}: cannot tell the dataset format from its keys ({found}); known {task} formats: "
                 f"{known_formats(task)}; {fix_cols}, or name the format with `format:`")
    return None


def _spec_name(fmt: Format) -> str:
    if fmt.task == "sft":
        return fmt.name
    return fmt.sft_base or next((n for n, c in NAMED["dpo"].items() if fmt.name in c and n != "preference"),
                                "preference")


def _add_system(ex: dict, system: str) -> None:
    key = "messages" if "messages" in ex else "prompt"
    msgs = ex[key]
    if not msgs or msgs[0]["role"] != "system":
        ex[key] = [{"role": "system", "content": system}, *msgs]
