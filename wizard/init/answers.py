"""Answers, as typed or read from an answers file, turned into values and then into a RunSpec dict.

wizard.init.questions says what is asked; this module says what an answer means. Nothing else writes spec keys.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from wizard.init.context import Context
from wizard.init.questions import (
    BY_ID,
    QUESTIONS,
    Question,
    default,
    model_id,
    options,
    question_for,
    spec_value,
    task_method,
)
from wizard.spec import ALIASES, fields


def nearest_id(name: str) -> str | None:
    """The question an unknown answers-file key most likely means.

    Another trainer's name (learning_rate, lora_rank, cutoff_len: the spec's alias table) or a spec field
    (train.lr, r) leads to the question that sets that field; anything else to the closest id by spelling.
    """
    key = name.strip().lower()
    path = ALIASES.get(key)
    if path is None and fields.exists(key):
        path = key
    if path is None:
        path = next((p for q in QUESTIONS if q.spec for p in (q.spec, *q.also) if p.rpartition(".")[2] == key), None)
    qid = question_for(path) if path else None
    if qid:
        return qid
    got = difflib.get_close_matches(name, list(BY_ID), n=1, cutoff=0.4)
    return got[0] if got else None


def coerce(q: Question, raw: Any, a: dict, ctx: Context) -> Any:
    """An answer (typed text or an answers-file value) as the question's type; ValueError says why not."""
    if q.kind == "confirm":
        if isinstance(raw, bool):
            return raw
        s = str(raw).strip().lower()
        if s in ("y", "yes", "true", "on", "1"):
            return True
        if s in ("n", "no", "false", "off", "0"):
            return False
        raise ValueError("answer yes or no")
    if q.kind == "number":
        if isinstance(raw, bool):
            raise ValueError("a number")
        try:
            num = float(str(raw).strip())
        except ValueError:
            raise ValueError(f"a number{' (whole)' if q.integer else ''}, e.g. {default(q, a, ctx)}") from None
        if q.integer:
            if num != int(num):
                raise ValueError("a whole number")
            return int(num)
        return num
    if q.kind == "select":
        values = [o.value for o in options(q, a, ctx)]
        low = {str(v).lower(): v for v in values}
        if str(raw).lower() in low:
            return low[str(raw).lower()]
        raise ValueError(f"one of: {', '.join(map(str, values))}")
    if isinstance(raw, list):  # `target_modules: [q_proj, v_proj]` in an answers file
        return ",".join(map(str, raw))
    return "" if raw is None else str(raw).strip()


def check(q: Question, value: Any, a: dict, ctx: Context) -> str | None:
    """Why an answer is refused, or None: the question's own check, then its spec field's (bounds, rules)."""
    if q.kind in ("text", "path") and value in ("", None):
        return None if q.optional else "an answer is needed here"
    err = q.validate(value, a, ctx) if q.validate else None
    if err is None and q.spec and q.choices is None:
        # A question with its own choices answers with a stand-in ("demo", "bundled:mix"), not a field value.
        err = fields.problem(q.spec, spec_value(q, value))
    return err


# ---------------------------------------------------------------- answers -> spec

def _data_sources(a: dict, ctx: Context, base: Path) -> list:
    choice = a.get("dataset", "")
    if choice == "hub":
        return [a["dataset_hub"]]
    data = ctx.bundled_data()
    if choice == "bundled:mix":
        files = [data["self_cognition"], data["general_chat"]]
    elif choice.startswith("bundled:"):
        files = [data[choice.partition(":")[2]]]
    else:
        files = [Path(a["dataset_path"]).expanduser()]
    return [portable_path(f, base) for f in files]


def portable_path(p: Path, base: Path) -> str:
    """Relative to the spec's folder when the file sits under it (the spec then travels with its data)."""
    p = (p if p.is_absolute() else Path.cwd() / p).resolve()
    try:
        return str(p.relative_to(base.resolve()))
    except ValueError:
        return str(p)


def _put(d: dict, path: str, value: Any) -> None:
    *sections, name = path.split(".")
    for s in sections:
        d = d.setdefault(s, {})
    d[name] = value


def build_spec_dict(a: dict, ctx: Context, spec_file: Path) -> dict:
    """The RunSpec dict the answers describe; fields not answered keep the spec's own defaults."""
    task, method = task_method(a)
    hub = a.get("hub", "demo")
    mid = model_id(a, ctx)
    if hub == "local":
        mid = str(Path(mid).expanduser().resolve())
    # "demo" is the wizard's choice for the bundled model, which the catalog finds with hub auto.
    model: dict = {"id": mid, "hub": {"demo": "auto"}.get(hub, hub)}
    if a.get("dpo_adapter"):
        model["adapter"] = str(Path(a["dpo_adapter"]).expanduser().resolve())
    spec: dict = {"model": model, "task": task, "method": method,
                  "data": {"train": _data_sources(a, ctx, spec_file.parent)}}
    for q in QUESTIONS:
        # The answers that are their field's value as they stand; model and data are assembled above.
        if q.id not in a or not q.spec or not (q.tuning or q.id in ("name", "output_dir")):
            continue
        if q.spec.startswith("lora.") and method == "full":
            continue
        _put(spec, q.spec, spec_value(q, a[q.id]))
    return spec
