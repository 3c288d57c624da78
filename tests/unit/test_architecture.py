"""Module boundaries that import-linter cannot see: a private name (`_helper`) stays inside its module.

The layer order itself is checked by `lint-imports` (contracts in pyproject.toml), which `make test` runs."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT


def private_imports(root: Path, base: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wizard"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(base)}:{node.lineno}: {node.module}.{alias.name}")
            # `module._helper(...)` through an imported module object counts too
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in _wizard_module_names(tree):
                    found.append(f"{path.relative_to(base)}:{node.lineno}: {owner.id}.{node.attr}")
    return found


def _wizard_module_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wizard"):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.asname for a in node.names if a.name.startswith("wizard") and a.asname)
    return names


def test_no_module_imports_a_private_name_of_another():
    assert private_imports(ROOT / "wizard") == []


def test_the_check_sees_a_private_import(tmp_path):
    pkg = tmp_path / "wizard"
    pkg.mkdir()
    (pkg / "a.py").write_text("from wizard.b import _helper\nfrom wizard import c as cm\ncm._other()\n")
    assert private_imports(pkg, base=tmp_path) == ["wizard/a.py:1: wizard.b._helper", "wizard/a.py:3: cm._other"]
