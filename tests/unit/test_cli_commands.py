"""validate, recipes and doctor as a user runs them: real processes, real files, the bundled tokenizer."""
from __future__ import annotations

import json

from tests.conftest import ROOT, cli


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
    r = cli("recipes")
    assert r.returncode == 0, r.stderr
    for name in ("demo.yaml", "smollm2-135m-instruct", "qwen2.5-7b-instruct"):
        assert name in r.stdout
    assert str(ROOT / "recipes") in r.stdout.replace("\n", "") or "recipes" in r.stdout


def test_doctor_reports_the_machine():
    r = cli("doctor", "--no-network")
    assert r.returncode == 0, r.stderr
    for check in ("torch", "CUDA", "bitsandbytes", "NVML", "disk"):
        assert check in r.stdout


def test_bad_arguments_exit_2():
    r = cli("run")
    assert r.returncode == 2 and "spec" in r.stderr
