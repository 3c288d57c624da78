"""validate, recipes and doctor as a user runs them: real processes, real files, the bundled tokenizer."""
from __future__ import annotations

import json

import pytest

from tests.conftest import cli

pytestmark = pytest.mark.process


def test_validate_reports_format_rows_tokens_and_overlong_rows(tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [{"instruction": f"Repeat {i}", "input": "", "output": "ok " * (3 if i % 4 else 80)} for i in range(12)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"model: {{id: smollm2-135m-instruct}}\ndata: {{train: {data}, max_length: 96}}\n", encoding="utf-8")
    r = cli("validate", str(spec))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "valid" in out and "alpaca" in out
    assert "train rows: 12" in out
    assert "over max_length 96: 3 (3 truncated, 0 dropped; policy: truncate)" in out, out


def test_validate_names_the_bad_line(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                    '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}\n'
                    '{not json\n', encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"model: {{id: smollm2-135m-instruct}}\ndata: {{train: {data}}}\n", encoding="utf-8")
    r = cli("validate", str(spec), "--no-tokens")
    assert r.returncode == 2
    assert f"{data}:2:" in r.stderr and f"{data}:3:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_recipes_lists_bundled_recipes_and_the_catalog():
    from wizard.catalog import load_catalog, recipe_files

    r = cli("recipes", env={"COLUMNS": "300"})  # wide: each path and description stays on one line
    assert r.returncode == 0, r.stderr
    files = recipe_files()
    assert {"demo.yaml", "demo-dpo.yaml"} <= {f.name for f in files}
    for f in files:  # the path to pass to `tune-wizard run`, and the recipe's own first comment
        row = next((ln for ln in r.stdout.splitlines() if str(f) in ln), None)
        assert row is not None, f"{f} not listed:\n{r.stdout}"
        comment = next(ln for ln in f.read_text(encoding="utf-8").splitlines() if ln.startswith("#"))
        assert comment.lstrip("# ").strip() in row, row
    for alias in load_catalog():
        assert alias in r.stdout, alias


def test_doctor_reports_the_machine():
    r = cli("doctor", "--no-network")
    assert r.returncode == 0, r.stderr
    for check in ("torch", "CUDA", "bitsandbytes", "NVML", "disk"):
        assert check in r.stdout


def test_bad_arguments_exit_2():
    r = cli("run")
    assert r.returncode == 2 and "spec" in r.stderr
