"""The facts of one RunSpec field, found by its dotted path ("train.lr", "data.train[].path").

The pydantic model (wizard.spec.model) is the only place a field's description, default, choices and bounds
are written; the wizard's questions and the commented YAML read them through these functions, and
`problem()` checks a value with the spec's own validator, so a value is refused with the same words
whether it comes from a spec file or from the wizard.
"""
from __future__ import annotations

import typing
from functools import cache
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from wizard.spec.model import RunSpec, error_message

_BOUNDS = {annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le", annotated_types.Lt: "lt"}


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: `LoraSpec`, or the item of `list[DatasetSource]`."""
    for cand in (annotation, *typing.get_args(annotation)):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


@cache
def owner(path: str) -> tuple[type[BaseModel], str]:
    """(the model class that holds the field, the field's name); KeyError names a path RunSpec lacks."""
    cls: type[BaseModel] = RunSpec
    *parents, name = path.replace("[]", "").split(".")
    for part in parents:
        field = cls.model_fields.get(part)
        sub = _submodel(field.annotation) if field else None
        if sub is None:
            raise KeyError(f"RunSpec has no section '{part}' (in '{path}')")
        cls = sub
    if name not in cls.model_fields:
        raise KeyError(f"RunSpec has no field '{path}'")
    return cls, name


def info(path: str) -> FieldInfo:
    cls, name = owner(path)
    return cls.model_fields[name]


def exists(path: str) -> bool:
    try:
        owner(path)
    except KeyError:
        return False
    return True


def description(path: str) -> str:
    return info(path).description or ""


def default(path: str) -> Any:
    """The field's own default (None for a required field)."""
    f = info(path)
    return f.get_default(call_default_factory=True) if not f.is_required() else None


def choices(path: str) -> tuple:
    """The values a Literal field allows, in the order written (for `"auto" | list[str]`, the words)."""
    ann = info(path).annotation
    for cand in (ann, *typing.get_args(ann)):
        if typing.get_origin(cand) is Literal:
            return typing.get_args(cand)
    return ()


def bounds(path: str) -> dict[str, float]:
    """{"ge": 1, "le": 1024}, ..., from the field's constraints."""
    out = {}
    for m in info(path).metadata:
        for kind, key in _BOUNDS.items():
            if isinstance(m, kind):
                out[key] = getattr(m, key)
    return out


def is_integer(path: str) -> bool:
    ann = info(path).annotation
    return ann is int or (int in typing.get_args(ann) and float not in typing.get_args(ann))


def problem(path: str, value: Any) -> str | None:
    """What the spec says is wrong with `value` for this field (its bounds, choices, type, rules), or None."""
    cls, name = owner(path)
    try:
        # The model's own validator, run on this one field alone (the rest of the model is left unset).
        cls.__pydantic_validator__.validate_assignment(cls.model_construct(), name, value)
    except ValidationError as err:
        return "; ".join(error_message(e) for e in err.errors())
    return None


def paths(cls: type[BaseModel] = RunSpec, prefix: str = "") -> list[str]:
    """Every field's dotted path, sections before their fields; list items as `data.train[].path`."""
    out = []
    for name, f in cls.model_fields.items():
        out.append(prefix + name)
        sub = _submodel(f.annotation)
        if sub is not None:
            item = "[]" if typing.get_origin(f.annotation) is list else ""
            out += paths(sub, f"{prefix}{name}{item}.")
    return out
