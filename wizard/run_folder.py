"""The run folder contract: runs/<name>-<yyyymmdd-hhmmss>/ and the files in it.

    spec.yaml        the resolved spec; `tune-wizard run runs/<run>/spec.yaml` repeats the run
    run.json         versions of torch, transformers, peft, bitsandbytes, trl; seed; host; start time
    state.json       status (running | finished | failed | interrupted), step / total, paths; rewritten
                     atomically so a watcher never reads half a file
    metrics.jsonl    one JSON object per logging step (and per evaluation)
    gpu.jsonl        NVML samples, about one a second (the run's one sampler writes them)
    train.log        human-readable log
    checkpoints/checkpoint-N/   resumable; `.complete` is written last, so a half-written one is skipped
    adapter/         the final PEFT adapter (the whole model for method: full); written as adapter.partial/,
                     then renamed, so a reader never finds half of one
    loss.png         written when training ends
    .lock            held by the one process that writes the folder (an OS file lock: it dies with the
                     process, so kill -9 leaves no stale lock)
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
ADAPTER_PARTIAL = "adapter.partial"  # the final adapter while it is written; renamed to ADAPTER when complete
LOSS_PLOT = "loss.png"
COMPLETE = ".complete"
LOCK = ".lock"
# state.json statuses of a run that has not ended (a reader checks the lock to see whether it still lives)
LIVE = ("starting", "running")

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


def write_text_atomic(path: Path, text: str) -> None:
    """PATH holds TEXT or its old content, never half of either (a full disk fails the write, not the file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str))


def _file_lock(run_dir: Path, timeout: float):
    from filelock import FileLock

    # No soft-lock fallback: a lock file that outlives a killed process would refuse every --resume.
    return FileLock(Path(run_dir) / LOCK, timeout=timeout, fallback_to_soft=False, preserve_lock_file=True)


def take_lock(run_dir: Path):
    """The run folder's writer lock, held until .release() or the process ends; None when another process holds
    it. Waits a moment first: a reader (`writer_alive`) may be checking it."""
    from filelock import Timeout

    lock = _file_lock(run_dir, timeout=3)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


def writer_alive(run_dir: Path) -> bool:
    """Whether a process holds RUN_DIR's lock now: a run that still writes it. A folder from before locks
    existed falls back to its state's pid."""
    from filelock import Timeout

    run_dir = Path(run_dir)
    if not (run_dir / LOCK).is_file():
        return _state_pid_alive(run_dir)
    lock = _file_lock(run_dir, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:  # a lock that cannot be taken at all (read-only folder): trust the pid
        return _state_pid_alive(run_dir)
    lock.release()
    return False


def _state_pid_alive(run_dir: Path) -> bool:
    """Whether the process state.json names is alive (no lock to ask)."""
    pid = (read_json(run_dir / STATE) or {}).get("pid")
    return isinstance(pid, int) and _pid_alive(pid)


def read_state(run_dir: Path) -> dict | None:
    """state.json as a reader should believe it: a run that says starting/running but whose process is gone
    (kill -9, the machine's OOM killer, a power cut: nothing could write its end) reads as `stopped`."""
    run_dir = Path(run_dir)
    state = read_json(run_dir / STATE)
    if not state or state.get("status") not in LIVE or writer_alive(run_dir):
        return state
    again = read_json(run_dir / STATE) or state  # it may have ended between the two reads
    if again.get("status") not in LIVE:
        return again
    pid = again.get("pid")
    return {**again, "status": "stopped",
            "message": f"stopped (process gone): {f'pid {pid}' if pid else 'its process'} ended without recording "
                       "how (kill -9, out of host memory, or the machine went down); see train.log; --resume "
                       "continues from the newest complete checkpoint"}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


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
