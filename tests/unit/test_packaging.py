"""What a wheel carries: the catalog, the recipes and their data are package data, and the repository's
top-level recipes/ is the same folder (a link), so the two can never drift apart.

The wheel itself is built and installed into a clean venv by .ci/wheel_check (CI runs it after the tests)."""
from __future__ import annotations

import fnmatch
from pathlib import Path

import tomllib

from tests.conftest import ROOT
from wizard.catalog import recipes_dir
from wizard.spec import load, locate


def test_top_level_recipes_is_a_link_to_the_package_data():
    link = ROOT / "recipes"
    assert link.is_symlink(), "recipes/ must stay a link to wizard/recipes (one copy of the catalog)"
    assert link.resolve() == (ROOT / "wizard" / "recipes").resolve()


def test_recipes_dir_is_inside_the_package():
    import wizard

    assert recipes_dir().resolve() == (Path(wizard.__file__).parent / "recipes").resolve()
    assert (recipes_dir() / "models.yaml").is_file()


def test_every_recipe_file_is_declared_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["wizard"]
    package = ROOT / "wizard"
    files = [p.relative_to(package).as_posix() for p in (package / "recipes").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    assert files, "no recipe files found"
    missing = [f for f in files if not any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert not missing, f"not shipped in the wheel (add a package-data glob in pyproject.toml): {missing}"
    assert "py.typed" in globs and (package / "py.typed").is_file()


def test_a_bundled_recipe_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert locate("demo") == recipes_dir() / "demo.yaml"
    assert locate("demo-dpo.yaml") == recipes_dir() / "demo-dpo.yaml"
    spec = load("demo")
    assert spec.name == "demo"
    # Its data paths resolve against the recipe's own folder, not the working directory.
    assert all(Path(s.path).is_file() for s in spec.data.train)


def test_a_local_file_wins_over_a_bundled_recipe_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.yaml").write_text("name: mine\n", encoding="utf-8")
    assert locate("demo.yaml") == Path("demo.yaml")
    assert locate("no-such-recipe") == Path("no-such-recipe")
