"""The run folder contract: runs/<name>-<yyyymmdd-hhmmss>/ and the files in it.

    spec.yaml        the resolved spec; `tune-wizard run runs/<run>/spec.yaml` repeats the run
    run.json         versions of torch, transformers, peft, bitsandbytes, trl; seed; host; start time
    state.json       status (running | finished | failed | interrupted), step / total, paths; rewritten
                     atomically so a watcher never reads half a file
    metrics.jsonl    one JSON object per logging step (and per evaluation)
    gpu.jsonl        NVML samples, about one a second (the run's one sampler writes them)
    train.log        human-readable log
    checkpoints/checkpoint-N/   resumable; `.complete` is written last, so a half-written one is skipped
    adapter/         the final PEFT adapter (the whole model for method: full)
    loss.png         written when training ends
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

SPEC = "spec.yaml"
RUN_INFO = "run.json"
STATE = "state.json"
METRICS = "metrics.jsonl"
GPU = "gpu.jsonl"
LOG = "train.log"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
LOSS_PLOT = "loss.png"
COMPLETE = ".complete"

_STAMP = re.compile(r"-(\d{8}-\d{6})$")


def new_run_dir(output_dir: str | Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(output_dir) / f"{name}-{stamp}"
    n = 1
    while path.exists():  # two runs started within one second
        n += 1
        path = Path(output_dir) / f"{name}-{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def runs_of(output_dir: str | Path, name: str) -> list[Path]:
    """Run folders of a spec name, newest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(name + "-") and (p / SPEC).is_file()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints whose save finished, oldest first by step."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    out = []
    for p in root.glob("checkpoint-*"):
        if (p / COMPLETE).is_file() and (p / "trainer_state.json").is_file():
            try:
                out.append((int(p.name.split("-")[-1]), p))
            except ValueError:
                continue
    return [p for _, p in sorted(out)]


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, default=_jsonable) + "\n")
        fh.flush()


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a last line still being written is skipped, not an error."""
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        pass
    return rows


def _jsonable(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def is_run_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / SPEC).is_file() and (p / RUN_INFO).is_file()
