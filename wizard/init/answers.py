"""Answers, as typed or read from an answers file, turned into values and then into a RunSpec dict.

wizard.init.questions says what is asked; this module says what an answer means. Nothing else writes spec keys.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from wizard import hubs
from wizard.catalog import lookup
from wizard.init.context import Context
from wizard.init.questions import (
    BY_ID,
    QUESTIONS,
    TASK_PAIRS,
    Question,
    auto_or_whole,
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
        return [hub_source(a["dataset_hub"], a.get("hub", ""))]
    data = ctx.bundled_data()
    if choice == "bundled:mix":
        files = [data["self_cognition"], data["general_chat"]]
    elif choice.startswith("bundled:"):
        files = [data[choice.partition(":")[2]]]
    else:
        files = [Path(a["dataset_path"]).expanduser()]
    return [portable_path(f, base) for f in files]


def hub_source(text: str, hub: str) -> Any:
    """A hub dataset id (`owner/name#N`) as a data.train source. Chosen with a hub (ModelScope, Hugging Face),
    the source names that hub, as model.hub does for the model: `hub: auto` would read Hugging Face unless
    USE_MODELSCOPE_HUB=1 is set where the run starts, so a ModelScope dataset id would go to the wrong hub."""
    if hub not in hubs.TITLES:
        return text  # the bundled model or a local folder: the dataset's hub is `auto`, as before
    path, _, n = str(text).partition("#")
    return {"path": path, "hub": hub, **({"sample": int(n)} if n.isdigit() else {})}


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
    if a.get("download") and a.get("download_to"):  # downloaded by the wizard: the spec trains from the folder
        model = {"id": str(Path(a["download_to"]).expanduser().resolve()), "hub": "local"}
    if a.get("dpo_adapter"):
        model["adapter"] = str(Path(a["dpo_adapter"]).expanduser().resolve())
    spec: dict = {"model": model, "task": task, "method": method,
                  "data": {"train": _data_sources(a, ctx, spec_file.parent)}}
    for q in QUESTIONS:
        # The answers that are their field's value as they stand; model and data are assembled above.
        if q.id not in a or not q.spec or not (q.tuning or q.id in ("name", "output_dir", "gpus")):
            continue
        if q.spec.startswith("lora.") and method == "full":
            continue
        _put(spec, q.spec, spec_value(q, a[q.id]))
    return spec


# ---------------------------------------------------------------- checks on the answers as a whole

def model_problem(a: dict, ctx: Context) -> tuple[str, str] | None:
    """(the question whose answer is the model id, what is wrong) when the id the spec would get is not a
    catalog alias, a hub id (owner/name) or an existing path; else None. The questions' own checks refuse
    such an answer already; this holds whatever path the answers took (a picker's heading line, say)."""
    hub = a.get("hub", "demo")
    if hub == "demo":
        return None
    key = "model_path" if hub == "local" else "model_id" if a.get("model") == "other" else "model"
    mid = str(model_id(a, ctx)).strip()
    if mid and (lookup(mid) or hubs.is_repo_id(mid) or Path(mid).expanduser().exists()):
        return None
    return key, (f"'{mid}' is not a catalog alias (`tune-wizard recipes --models`), a hub id (owner/name) or "
                 "an existing folder or file")


# What a change of the estimate's advice (wizard.estimate.fitting_change) sets: "path: value (why)".
_CHANGE = re.compile(r"^(?P<path>[\w.]+): (?P<value>[^\s(]+)")


def change_answers(change: str | None, a: dict, ctx: Context) -> dict | None:
    """The answers the estimate's one fitting change stands for, e.g. "method: qlora (...)" -> task sft-qlora,
    "train.gradient_checkpointing: on (...)" -> gradient_checkpointing on; None when the wizard has no
    answer for it (or no answer that the questions' own checks take)."""
    m = _CHANGE.match(change or "")
    if not m:
        return None
    path, raw = m["path"], m["value"]
    if path == "method":
        pair = f"{task_method(a)[0]}-{raw}"
        return {"task": pair} if pair in TASK_PAIRS else None
    if path == "train.batch_size":  # "1 with train.grad_accum xN": the same rows per update
        rows = int(a.get("batch_size") or 1)
        accum = auto_or_whole(a.get("grad_accum", "auto"))
        return {"batch_size": 1, "grad_accum": accum * rows if isinstance(accum, int) else "auto"}
    qid = question_for(path)
    if qid is None:
        return None
    q = BY_ID[qid]
    try:
        out = {qid: coerce(q, raw, a, ctx)}
    except ValueError:
        return None
    if path == "train.batch_tokens":  # a pass holds a whole row: a smaller budget shortens the rows too
        tokens = auto_or_whole(raw)
        length = int(a.get("max_length") or fields.default("data.max_length"))
        if isinstance(tokens, int) and tokens < length:
            out["max_length"] = tokens
    trial = {**a, **out}
    for qid, value in out.items():
        if check(BY_ID[qid], value, trial, ctx):
            return None
    return out
