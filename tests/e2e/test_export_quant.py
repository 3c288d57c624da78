"""`tune-wizard export RUN --awq | --gptq` (wizard/export/quantize.py): every refusal (exit 2, nothing of the
user's touched). The export itself is tested on the demo's own run (tests/e2e/test_demo.py: GPTQ on the CPU keeps
the trained name, and chat and serve take the folder); AWQ needs a GPU (bench/quant_export.py --scheme awq).

llm-compressor is the optional extra `[quant]` (it pins transformers to an older release than the default
install), imported only once every refusal the model's config, the data and the machine decide has passed: those
refusals are tested here, in-process, where the library is not installed (the export itself runs in .venv-quant,
tests/e2e/test_demo.py). SmolLM2-135M's hidden size is 576, which does not split into groups of 128: its refusal
of 128 names 64.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

import wizard
from tests.conftest import cli
from tests.e2e._export_fixtures import make_fixture_run, make_tiny_llama
from wizard.errors import UserError

SELF_COGNITION = Path(wizard.__file__).parent / "recipes" / "data" / "self_cognition.jsonl"


def _quiet(_text: str) -> None:
    pass


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The export fixture with 40 training rows instead of one (calibration needs at least 16)."""
    root = tmp_path_factory.mktemp("quant")
    run = make_fixture_run(root)
    rows = SELF_COGNITION.read_text(encoding="utf-8").splitlines()[:40]
    (root / "rows.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return run


# ------------------------------------------------------------------ refusals (exit code 2, no traceback)

def test_refuses_an_unknown_group_size_and_too_few_rows_asked(run_dir, tmp_path):
    from wizard.export.quantize import export_quantized

    with pytest.raises(UserError, match="--group-size 100"):
        export_quantized(run_dir, tmp_path / "a", "gptq", group_size=100, log=_quiet)
    with pytest.raises(UserError, match="at least 16"):
        export_quantized(run_dir, tmp_path / "a", "gptq", calibration_rows=4, log=_quiet)
    with pytest.raises(UserError, match="not a run folder") as err:
        export_quantized(make_tiny_llama(tmp_path), tmp_path / "a", "gptq", log=_quiet)
    assert "--calibration-data" in err.value.hint
    assert not (tmp_path / "a").exists()


@pytest.mark.process
def test_cli_refuses_a_non_empty_output_folder_with_exit_2(run_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    r = cli("export", str(run_dir), "--gptq", "--group-size", "64", "--out", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr
    assert "not empty" in r.stderr and "--force" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_says_how_to_install_the_library_when_it_is_missing(run_dir, tmp_path, monkeypatch):
    from wizard.export.quantize import export_quantized

    monkeypatch.setitem(sys.modules, "llmcompressor", None)  # where it is installed: import raises ImportError
    with pytest.raises(UserError) as err:
        export_quantized(run_dir, tmp_path / "out", "gptq", group_size=64, log=_quiet)
    assert "llm-compressor" in str(err.value) and "pip install 'tune-wizard[quant]'" in err.value.hint


@pytest.mark.skipif(importlib.util.find_spec("compressed_tensors") is not None,
                    reason="compressed-tensors is installed in this venv: the refusal is for where it is not")
def test_chat_and_serve_say_what_to_install_for_a_4bit_folder(tmp_path):
    """Without compressed-tensors, loading a 4-bit folder names the package instead of failing deep in transformers."""
    from wizard.inference.loading import load_for_inference

    model = make_tiny_llama(tmp_path)
    cfg = json.loads((model / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "compressed-tensors", "format": "pack-quantized"}
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="compressed-tensors package is not installed") as err:
        load_for_inference(str(model))
    assert "pip install compressed-tensors" in err.value.hint


# ------------------------------------------------------------------ refusals the config, data and machine decide
# (before the library is imported: they run where it is not installed too)

def test_refuses_a_group_size_the_layers_do_not_split_into(run_dir, tmp_path):
    from wizard.export.quantize import export_quantized

    with pytest.raises(UserError, match="576 input columns do not split into groups of 128") as err:
        export_quantized(run_dir, tmp_path / "out", "gptq", group_size=128, log=_quiet)
    assert err.value.hint == "use --group-size 64"
    assert not (tmp_path / "out").exists()


def test_refuses_too_few_calibration_rows(tmp_path):
    from wizard.export.quantize import export_quantized

    run = make_fixture_run(tmp_path / "one-row")  # its data is a single conversation
    with pytest.raises(UserError, match="too few calibration rows: the run's training data .* gives 1") as err:
        export_quantized(run, tmp_path / "out", "gptq", group_size=64, log=_quiet)
    assert "--calibration-data" in err.value.hint


def test_refuses_awq_without_a_gpu_and_offers_gptq(run_dir, tmp_path):
    import torch

    from wizard.export.quantize import export_quantized

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    with pytest.raises(UserError, match="no GPU: llm-compressor's AWQ needs one") as err:
        export_quantized(run_dir, tmp_path / "out", "awq", group_size=64, calibration_rows=16, log=_quiet)
    assert "use --gptq" in err.value.hint and re.search(r"about \d+ (s|min) for this model here", err.value.hint)
    assert not (tmp_path / "out").exists()


def test_refuses_a_large_model_without_a_gpu_saying_how_long_the_cpu_would_take(tmp_path):
    """A 1.6B-parameter Llama's config (without `architectures`, as some hand-written ones are) beside a weights
    file of one number: the refusal comes from the config, before any weight or calibration row is read."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    from wizard.export.quantize import export_quantized

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    big = tmp_path / "big-llama"
    LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=16,
                num_key_value_heads=8, vocab_size=32000).save_pretrained(big)
    save_file({"unread": torch.zeros(1)}, str(big / "model.safetensors"))
    with pytest.raises(UserError, match=r"no GPU: llm-compressor quantizes 1\.6B parameters .* on the CPU it would "
                                        r"take about \d+ (min|h)") as err:
        export_quantized(big, tmp_path / "out", "gptq", calibration_data=[str(SELF_COGNITION)], log=_quiet)
    assert "--allow-cpu" in err.value.hint
    assert not (tmp_path / "out").exists()


def test_refuses_an_unsupported_architecture(tmp_path):
    from wizard.export.quantize import export_quantized

    model = make_tiny_llama(tmp_path)
    cfg = json.loads((model / "config.json").read_text())
    cfg["architectures"] = ["LlamaForSequenceClassification"]
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="LlamaForSequenceClassification: 4-bit export handles text-only causal"):
        export_quantized(model, tmp_path / "out", "gptq", group_size=64, calibration_data=[str(SELF_COGNITION)],
                         log=_quiet)


def test_export_help_lists_every_format_with_when_to_use_it():
    from wizard.cli import build_parser

    sub = build_parser(["export"])._subparsers._group_actions[0].choices["export"]
    text = " ".join(sub.format_help().split())
    for flag, use in (("--merge", "further training"), ("--gguf TYPE", "llama.cpp, Ollama, LM Studio"),
                      ("--awq / --gptq", "vLLM, SGLang, TGI on GPUs")):
        assert f"tune-wizard export RUN_DIR {flag}" in text and use in text, (flag, text[-600:])
    assert "--group-size {32,64,128}" in text and "--calibration-rows N" in text and "--calibration-data FILE" in text
