"""Answers, as typed or read from an answers file, turned into values and then into a RunSpec dict.

wizard.init.questions says what is asked; this module says what an answer means. Nothing else writes spec keys.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from wizard.init.context import Context
from wizard.init.questions import BY_ID, QUESTIONS, Question, check_targets, default, model_id, options, task_method

# Names other trainers (ms-swift, LLaMA-Factory, transformers) use for the same answers.
ALIASES = {"learning_rate": "lr", "num_train_epochs": "epochs", "rank": "lora_r", "lora_rank": "lora_r",
           "alpha": "lora_alpha", "max_len": "max_length", "max_seq_length": "max_length",
           "cutoff_len": "max_length", "per_device_train_batch_size": "batch_size",
           "gradient_accumulation_steps": "grad_accum", "lr_scheduler_type": "scheduler", "optim": "optimizer",
           "train_type": "task", "tuner_type": "task", "finetuning_type": "task", "model_id_or_path": "model_id",
           "model_name_or_path": "model_id", "use_hf": "hub", "output": "output_dir", "run_name": "name",
           "warmup": "warmup_ratio", "val_dataset_ratio": "eval_split", "split_dataset_ratio": "eval_split"}


def nearest_id(name: str) -> str | None:
    if name.lower() in ALIASES:
        return ALIASES[name.lower()]
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
    if q.id == "target_modules" and isinstance(raw, list):
        return ",".join(map(str, raw))
    return "" if raw is None else str(raw).strip()


def check(q: Question, value: Any, a: dict, ctx: Context) -> str | None:
    if q.kind in ("text", "path") and value in ("", None) and not q.optional:
        return "an answer is needed here"
    if q.id == "target_modules":
        return check_targets(targets(value), a, ctx)
    return q.validate(value, a, ctx) if q.validate else None


def targets(v: Any) -> Any:
    if isinstance(v, list):
        return v
    s = str(v).strip()
    return s if s in ("auto", "all-linear") else [t.strip() for t in s.split(",") if t.strip()]


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


def build_spec_dict(a: dict, ctx: Context, spec_file: Path) -> dict:
    """The RunSpec dict the answers describe; keys not answered keep the spec's own defaults."""
    task, method = task_method(a)
    hub = a.get("hub", "demo")
    mid = model_id(a, ctx)
    if hub == "local":
        mid = str(Path(mid).expanduser().resolve())
    model: dict = {"id": mid, "hub": {"demo": "auto", "local": "local"}.get(hub, hub)}
    if a.get("dpo_adapter"):
        model["adapter"] = str(Path(a["dpo_adapter"]).expanduser().resolve())
    spec: dict = {"version": 1, "name": a["name"], "model": model, "task": task, "method": method,
                  "data": {"train": _data_sources(a, ctx, spec_file.parent)}, "train": {},
                  "output_dir": a.get("output_dir", "runs")}
    if method != "full":
        spec["lora"] = {}
    for q in QUESTIONS:
        if q.id not in a or not q.key or not q.tuning:
            continue
        section, _, field_ = q.key.partition(".")
        if section == "lora" and method == "full":
            continue
        value = a[q.id]
        if q.id == "target_modules":
            value = targets(value)
        elif q.kind == "number" and not q.integer:
            value = float(value)  # one spelling (3.0, not 3) whether typed, defaulted or read from a file
        spec.setdefault(section, {})[field_] = value
    return spec
