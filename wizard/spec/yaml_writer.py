"""A RunSpec as YAML with a comment on every field, for people who open the file to change it.

The comments are the fields' descriptions (wizard.spec.model), so a field is explained in one place. The text
must load back into the same RunSpec through wizard.spec.load (a unit test checks it), so values are written
with PyYAML's own scalar dumper and only the layout and comments are ours.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from wizard.spec import DatasetSource, RunSpec, fields

COMMENT_COLUMN = 34
MAX_WIDTH = 110


def comment_for(path: str) -> str:
    """The comment for a dotted field path: the field's own description."""
    return fields.description(path) if fields.exists(path) else ""


def _sub_model(cls: type[BaseModel], name: str) -> type[BaseModel] | None:
    field = cls.model_fields.get(name)
    if field is None:
        return None
    if name in ("train", "eval") and cls.__name__ == "DataSpec":
        return DatasetSource
    ann = field.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text


def relevant(spec: RunSpec) -> dict:
    """The spec as a dict, minus sections the run won't read and optional fields left unset."""
    d = spec.to_dict()
    if spec.task != "dpo":
        d.pop("dpo")
    if spec.method != "qlora":
        d.pop("quant")
    if spec.method == "full":
        d.pop("lora")
    if spec.distributed == type(spec.distributed)():
        d.pop("distributed")  # one process, as every run before the section existed
    _drop_unset(d, RunSpec)
    return d


def _drop_unset(d: dict, cls: type[BaseModel]) -> None:
    for name, field in cls.model_fields.items():
        if name not in d:
            continue
        if d[name] is None and field.default is None:
            del d[name]
        elif d[name] == [] and name == "eval":
            del d[name]
        elif isinstance(d[name], dict) and d[name] == {} and name == "columns":
            del d[name]
        elif isinstance(d[name], dict):
            sub = _sub_model(cls, name)
            if sub is not None:
                _drop_unset(d[name], sub)


def _source(src: dict) -> Any:
    """A dataset source in the `path#N` shorthand when nothing else about it differs from the default."""
    rest = {k: v for k, v in src.items() if k not in ("path", "sample")}
    defaults = {k: f.default for k, f in DatasetSource.model_fields.items() if k not in ("path", "sample")}
    if all(v == defaults.get(k) or (v in ({}, None) and k in ("columns", "subset")) for k, v in rest.items()):
        return src["path"] + (f"#{src['sample']}" if src.get("sample") else "")
    return {k: v for k, v in src.items() if v not in (None, {})}


def _line(indent: int, key: str, value: str, comment: str) -> str:
    text = f"{' ' * indent}{key}:{(' ' + value) if value else ''}"
    if not comment:
        return text
    beside = text.ljust(COMMENT_COLUMN) + f"  # {comment}"
    if len(beside) <= MAX_WIDTH:
        return beside
    # Too long to sit beside the value: above it, at the key's indent (a "- " item keeps its dash below).
    pad = " " * (indent + (2 if key.startswith("- ") else 0))
    return f"{pad}# {comment}\n{text}" if not key.startswith("- ") else f"{text}  # {comment}"


def _emit(d: dict, path: str, indent: int, out: list) -> None:
    for key, value in d.items():
        full = f"{path}.{key}" if path else key
        comment = comment_for(full)
        if isinstance(value, dict) and value:
            out.append(_line(indent, key, "", comment))
            _emit(value, full, indent + 2, out)
        elif key in ("train", "eval") and path == "data":
            items = [_source(s) for s in value]
            if all(isinstance(i, str) for i in items):
                out.append(_line(indent, key, "", comment))
                out.extend(f"{' ' * (indent + 2)}- {scalar(i)}" for i in items)
            else:
                out.append(_line(indent, key, "", comment))
                for item in items:
                    if isinstance(item, str):
                        out.append(f"{' ' * (indent + 2)}- {scalar(item)}")
                        continue
                    for n, (k, v) in enumerate(item.items()):
                        lead = "- " if n == 0 else "  "
                        out.append(_line(indent + 2, lead + k, scalar(v), comment_for(f"{full}[].{k}")))
        else:
            out.append(_line(indent, key, scalar(value), comment))


def render(spec: RunSpec, header: str = "") -> str:
    out: list[str] = [f"# {h}" if h else "#" for h in header.splitlines()] if header else []
    _emit(relevant(spec), "", 0, out)
    return "\n".join(out) + "\n"


def write(spec: RunSpec, path: str | Path, header: str = "") -> Path:
    """Write atomically (a file beside it, then a rename): an interrupted write never leaves a half spec
    that looks complete, and a reader never sees one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(render(spec, header))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p
