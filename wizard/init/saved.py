"""The answers a spec was made from, saved beside it as NAME.answers.yaml (as copier keeps its answers file).

It is an answers file like any other: `tune-wizard init --answers NAME.answers.yaml` makes the same spec again
without a question, and an interactive rerun in the same folder offers its answers as the defaults. Only what
a person or an answers file answered is kept; what the recommended settings filled in is left out, so a rerun
on another machine gets that machine's recommendations.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from wizard.init.questions import BY_ID, QUESTIONS

SUFFIX = ".answers.yaml"
# Answers that name a file or folder: saved absolute, so the answers file works from any folder.
PATHS = ("model_path", "dataset_path", "dpo_adapter", "download_to")


def path_for(spec_file: Path) -> Path:
    return spec_file.with_name(spec_file.stem + SUFFIX)


def answers_to_save(a: dict, filled: set[str], flow_owned: tuple[str, ...]) -> dict:
    """The answers, in question order, as an answers file holds them."""
    out = {}
    for q in QUESTIONS:
        if q.id not in a or q.id in filled or q.id in flow_owned:
            continue
        value = a[q.id]
        if q.id in PATHS and value:
            value = str(Path(value).expanduser().resolve())
        out[q.id] = value
    return out


def write(path: Path, answers: dict, spec_file: str, command: str) -> None:
    head = (f"# The answers `tune-wizard init` wrote {spec_file} from (question id: answer).\n"
            f"# The same spec again, without questions: {command}\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(head + yaml.safe_dump(answers, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(path)


def latest(folder: Path) -> Path | None:
    """The newest answers file in a folder: the previous run of the wizard there."""
    found = sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def read_previous(path: Path) -> dict:
    """A previous answers file, as defaults to offer: the question ids in it; anything unreadable is no default."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return {str(k): v for k, v in raw.items() if str(k) in BY_ID} if isinstance(raw, dict) else {}
