"""4-bit W4A16 export (wizard/export/quantize.py): a fixture run quantized with llm-compressor on the CPU.

llm-compressor is the optional extra `[quant]` (it pins transformers to an older release than the default
install), so the tests that run it are skipped where it is not installed; the refusals that come before it
run everywhere. SmolLM2-135M's hidden size is 576, which does not split into groups of 128: it is quantized
with group size 64, and its refusal of 128 is tested.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import wizard
from tests.e2e._export_fixtures import PROMPTS, greedy, make_fixture_run, make_tiny_llama
from wizard.errors import UserError

try:
    import compressed_tensors  # noqa: F401
    import llmcompressor  # noqa: F401

    HAVE_LIB = True
except ImportError:
    HAVE_LIB = False

needs_lib = pytest.mark.skipif(not HAVE_LIB, reason="llm-compressor not installed (pip install tune-wizard[quant])")
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


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> Path:
    from wizard.export.quantize import export_quantized

    out = tmp_path_factory.mktemp("quant-out") / "w4a16"
    return export_quantized(run_dir, out, "gptq", group_size=64, calibration_rows=16, log=_quiet)


@needs_lib
@pytest.mark.slow
def test_gptq_folder_is_compressed_tensors_with_tokenizer_and_readme(exported):
    cfg = json.loads((exported / "config.json").read_text())
    q = cfg["quantization_config"]
    assert q["quant_method"] == "compressed-tensors"
    assert q["format"] == "pack-quantized"
    weights = q["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["strategy"], weights["group_size"], weights["symmetric"]) == \
        (4, "group", 64, True)
    assert "lm_head" in q["ignore"]
    assert (exported / "tokenizer.json").is_file() or (exported / "tokenizer_config.json").is_file()
    readme = (exported / "README.md").read_text()
    assert f"vllm serve {exported.resolve()}" in readme and "sglang.launch_server" in readme
    meta = json.loads((exported / "export.json").read_text())
    assert meta["scheme"] == "gptq" and meta["calibration_rows"] == 16


@needs_lib
@pytest.mark.slow
def test_gptq_weights_are_about_four_times_smaller_than_16_bit(exported):
    """Every quantized Linear: packed int4 weights plus one 16-bit scale a group, against 2 bytes a weight."""
    from safetensors import safe_open

    packed = scales = sixteen = 0
    layers = 0
    for f in exported.glob("*.safetensors"):
        with safe_open(f, "pt") as st:
            names = set(st.keys())
            for name in names:
                if not name.endswith(".weight_packed"):
                    continue
                prefix = name.removesuffix(".weight_packed")
                rows, cols = st.get_tensor(f"{prefix}.weight_shape").tolist()
                packed += st.get_tensor(name).nbytes
                scales += st.get_tensor(f"{prefix}.weight_scale").nbytes
                sixteen += rows * cols * 2
                layers += 1
    assert layers == 30 * 7  # q, k, v, o, gate, up, down in each of the 30 layers; lm_head stays 16-bit
    assert sixteen / packed == pytest.approx(4.0, rel=0.01)
    assert 3.5 < sixteen / (packed + scales) < 4.0


@needs_lib
@pytest.mark.slow
def test_gptq_folder_loads_in_transformers_and_generates(exported, run_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from wizard.inference.loading import load_for_inference

    tok = AutoTokenizer.from_pretrained(exported)
    model = AutoModelForCausalLM.from_pretrained(exported, dtype=torch.bfloat16)
    reference = load_for_inference(str(run_dir), dtype=torch.bfloat16, merge=True).model
    for prompt in PROMPTS:
        ids = greedy(model, tok, prompt, new_tokens=12)
        ref = greedy(reference, tok, prompt, new_tokens=12)
        n = len(ids) - 12
        text = tok.decode(ids[n:], skip_special_tokens=True)
        # Not token-for-token: with 16 calibration rows, 4-bit SmolLM2-135M answered "Who are you?" with "The name
        # of the person I'm referring to is:" where 16-bit says "I'm a friendly and curious AI ..." (32 rows kept
        # the first answer token). So: real words, not a degenerate repeat.
        words = text.split()
        assert len(set(words)) >= 3, (text, tok.decode(ref[n:]))


# ------------------------------------------------------------------ refusals (exit code 2, no traceback)

def test_refuses_an_unknown_scheme_group_size_and_too_few_rows_asked(run_dir, tmp_path):
    from wizard.export.quantize import export_quantized

    with pytest.raises(UserError, match="expected one of gptq, awq"):
        export_quantized(run_dir, tmp_path / "a", "exl2", log=_quiet)
    with pytest.raises(UserError, match="--group-size 100"):
        export_quantized(run_dir, tmp_path / "a", "gptq", group_size=100, log=_quiet)
    with pytest.raises(UserError, match="at least 16"):
        export_quantized(run_dir, tmp_path / "a", "gptq", calibration_rows=4, log=_quiet)


def test_refuses_a_non_empty_output_folder(run_dir, tmp_path):
    from wizard.export.quantize import export_quantized

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        export_quantized(run_dir, tmp_path / "out", "gptq", group_size=64, log=_quiet)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_says_how_to_install_the_library_when_it_is_missing(run_dir, tmp_path, monkeypatch):
    from wizard.export.quantize import export_quantized

    monkeypatch.setitem(sys.modules, "llmcompressor", None)  # import raises ImportError
    with pytest.raises(UserError) as err:
        export_quantized(run_dir, tmp_path / "out", "gptq", group_size=64, log=_quiet)
    assert "llm-compressor" in str(err.value) and "tune-wizard[quant]" in err.value.hint


@needs_lib
def test_refuses_a_group_size_the_layers_do_not_split_into(run_dir, tmp_path):
    from wizard.export.quantize import export_quantized

    with pytest.raises(UserError, match="576 input columns") as err:
        export_quantized(run_dir, tmp_path / "out", "gptq", group_size=128, log=_quiet)
    assert "--group-size 64" in err.value.hint


@needs_lib
def test_refuses_too_few_calibration_rows(tmp_path):
    from wizard.export.quantize import export_quantized

    run = make_fixture_run(tmp_path / "one-row")  # its data is a single conversation
    with pytest.raises(UserError, match="too few calibration rows"):
        export_quantized(run, tmp_path / "out", "gptq", group_size=64, log=_quiet)


@needs_lib
def test_refuses_a_large_model_without_a_gpu(run_dir, tmp_path, monkeypatch):
    import torch

    from wizard.export import quantize

    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    monkeypatch.setattr(quantize, "CPU_PARAMS_LIMIT", 1e6)
    with pytest.raises(UserError, match="no GPU") as err:
        quantize.export_quantized(run_dir, tmp_path / "out", "gptq", group_size=64, log=_quiet)
    assert "--allow-cpu" in err.value.hint


@needs_lib
def test_refuses_an_unsupported_architecture(tmp_path):
    from wizard.export.quantize import export_quantized

    model = make_tiny_llama(tmp_path)
    cfg = json.loads((model / "config.json").read_text())
    cfg["architectures"] = ["LlamaForSequenceClassification"]
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="causal language models"):
        export_quantized(model, tmp_path / "out", "gptq", group_size=64, calibration_data=[str(SELF_COGNITION)],
                         log=_quiet)
