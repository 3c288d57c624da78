"""The model catalog (wizard/recipes/models.yaml) and the bundled recipes, shipped inside the package."""
from __future__ import annotations

import functools
import importlib.resources
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def recipes_dir() -> Path:
    # Package data, so a wheel install has the catalog too; TUNE_WIZARD_RECIPES points at another folder
    # of the same layout (a lab's own recipes). The top-level recipes/ of the repository is a link to this one.
    env = os.environ.get("TUNE_WIZARD_RECIPES")
    return Path(env) if env else Path(str(importlib.resources.files("wizard") / "recipes"))


@dataclass(frozen=True)
class CatalogModel:
    alias: str
    family: str
    hf: str | None
    ms: str | None
    params_b: float
    context: int
    chat: bool
    target_modules: tuple[str, ...]
    shape: dict = field(default_factory=dict)
    bundled: dict | None = None


def load_catalog() -> dict[str, CatalogModel]:
    return _read_catalog(recipes_dir())


@functools.lru_cache(maxsize=4)
def _read_catalog(folder: Path) -> dict[str, CatalogModel]:
    # Keyed by the folder, so setting TUNE_WIZARD_RECIPES after a first lookup is obeyed.
    raw = yaml.safe_load((folder / "models.yaml").read_text(encoding="utf-8"))
    out = {}
    for alias, m in raw["models"].items():
        out[alias] = CatalogModel(
            alias=alias, family=m["family"], hf=m.get("hf"), ms=m.get("ms"),
            params_b=float(m["params_b"]), context=int(m.get("context", 4096)), chat=bool(m.get("chat", True)),
            target_modules=tuple(m.get("target_modules", ["q_proj", "v_proj"])),
            shape=dict(m.get("shape") or {}), bundled=m.get("bundled"),
        )
    return out


def lookup(model_id: str) -> CatalogModel | None:
    """A catalog entry by alias, or by its Hugging Face / ModelScope id (case-insensitive)."""
    cat = load_catalog()
    if model_id in cat:
        return cat[model_id]
    low = model_id.lower()
    for m in cat.values():
        if low in (m.alias.lower(), (m.hf or "").lower(), (m.ms or "").lower()):
            return m
    return None


# Per-architecture LoRA defaults for models outside the catalog, keyed by config.model_type.
FAMILY_TARGETS = {
    "chatglm": ["query_key_value"],
    "glm": ["query_key_value"],
    "bloom": ["self_attention.dense"],
    "falcon": ["query_key_value"],
    "gpt_neox": ["query_key_value"],
    "gpt2": ["c_attn"],
    "phi3": ["qkv_proj"],
    "internlm2": ["wqkv"],
}


def default_targets(model_type: str) -> list[str]:
    return FAMILY_TARGETS.get(model_type, ["q_proj", "v_proj"])


def recipe_files() -> list[Path]:
    return sorted(p for p in recipes_dir().glob("*.yaml") if p.name != "models.yaml")
