"""`tune-wizard export RUN_DIR --merge`: a standalone folder with the same logits as base + adapter."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import cli
from tests.e2e._export_fixtures import PROMPTS, export_run, template_ids

MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "chat_template.jinja", "export.json"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return export_run(tmp_path_factory)


@pytest.fixture(scope="module")
def batch(run_dir):
    """Token ids of the prompts through the run's chat template, padded into one batch."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run_dir / "adapter")
    rows = [template_ids(tok, [{"role": "user", "content": p}]) for p in PROMPTS]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


@pytest.fixture(scope="module")
def reference(run_dir, batch):
    """Logits of the base with the adapter applied by peft (not merged), in fp32, and of the bare base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from wizard import spec as specmod
    from wizard.model_source import resolve

    spec = specmod.load(run_dir / "spec.yaml")
    base = AutoModelForCausalLM.from_pretrained(resolve(spec.model.id), dtype=torch.float32)
    ids, mask = batch
    with torch.no_grad():
        bare = base(input_ids=ids, attention_mask=mask).logits
        with_adapter = PeftModel.from_pretrained(base, run_dir / "adapter")(input_ids=ids, attention_mask=mask).logits
    return with_adapter, bare


@pytest.fixture(scope="module")
def merged_fp32(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("merge") / "fp32"
    r = cli("export", str(run_dir), "--merge", "--out", str(out), "--dtype", "fp32")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(str(out))
    return out


def logits_of(folder: Path, batch, dtype=torch.float32):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    assert not hasattr(model, "peft_config"), "the merged folder must load as a plain transformers model"
    ids, mask = batch
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits.float(), model


@pytest.mark.process
def test_merged_folder_is_a_plain_model_folder(merged_fp32):
    names = {p.name for p in merged_fp32.iterdir()}
    assert MODEL_FILES <= names, names
    assert not any("adapter" in n or n.lower().startswith("readme") for n in names), names
    config = json.loads((merged_fp32 / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["use_cache"] is True
    assert json.loads((merged_fp32 / "export.json").read_text())["dtype"] == "fp32"


@pytest.mark.process
def test_fp32_merge_matches_base_plus_adapter(merged_fp32, reference, batch):
    with_adapter, bare = reference
    mask = batch[1].bool()
    merged, _ = logits_of(merged_fp32, batch)
    # The adapter must matter, or the comparison below would pass for a merge that dropped it.
    assert (bare - with_adapter)[mask].abs().max() > 0.1
    torch.testing.assert_close(merged[mask], with_adapter[mask], atol=1e-4, rtol=1e-4)


def test_bf16_merge_is_within_bf16_tolerance(run_dir, tmp_path, reference, batch):
    from wizard.export.merge import merge_run

    out = merge_run(str(run_dir), tmp_path / "bf16", dtype="bf16", log=lambda s: None)
    merged, model = logits_of(out, batch, dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    with_adapter, _ = reference
    mask = batch[1].bool()
    diff = (merged - with_adapter)[mask].abs()
    scale = with_adapter[mask].abs().mean()
    # bf16 keeps 8 bits of mantissa (relative step 2^-8 = 0.4%); across 30 layers the logits drift a few
    # percent of their typical size, while the top token stays the same almost everywhere.
    assert diff.mean() < 0.05 * scale, (diff.mean(), scale)
    agree = (merged.argmax(-1) == with_adapter.argmax(-1))[mask].float().mean()
    assert agree > 0.9, agree


@pytest.mark.process
def test_tokenizer_and_chat_template_are_kept(merged_fp32, run_dir):
    from transformers import AutoTokenizer

    original = AutoTokenizer.from_pretrained(run_dir / "adapter")
    merged = AutoTokenizer.from_pretrained(merged_fp32)
    assert merged.chat_template == original.chat_template
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPTS[0]}]
    assert template_ids(merged, msgs) == template_ids(original, msgs)
    assert (merged.eos_token, merged.pad_token) == (original.eos_token, original.pad_token)


@pytest.mark.process
def test_refuses_a_non_empty_folder_unless_forced(run_dir, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = cli("export", str(run_dir), "--merge", "--out", str(out))
    assert r.returncode == 2
    assert str(out) in r.stderr and "--force" in r.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    from wizard.export.merge import merge_run

    merge_run(str(run_dir), out, dtype="bf16", force=True, log=lambda s: None)
    names = {p.name for p in out.iterdir()}
    assert MODEL_FILES <= names and "notes.txt" in names  # --force replaces model files, nothing else


@pytest.mark.process
def test_merge_needs_a_run_folder(tmp_path):
    r = cli("export", "smollm2-135m-instruct", "--merge", "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    assert "not a run folder" in r.stderr and "--gguf" in r.stderr


def _variant(run_dir: Path, root: Path, method: str) -> Path:
    """A copy of the run folder whose spec says another method."""
    import yaml

    copy = root / f"{method}-20250101-000000"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("merged", "*.gguf", "checkpoints"))
    spec = yaml.safe_load((copy / "spec.yaml").read_text())
    spec["method"] = method
    (copy / "spec.yaml").write_text(yaml.safe_dump(spec))
    return copy


@pytest.mark.process
def test_qlora_run_merges_into_full_precision_weights(run_dir, merged_fp32, tmp_path):
    from safetensors.torch import load_file

    from wizard.export.merge import merge_run

    qlora = _variant(run_dir, tmp_path, "qlora")
    out = merge_run(str(qlora), tmp_path / "merged-q", dtype="fp32", log=lambda s: None)
    got, want = load_file(out / "model.safetensors"), load_file(merged_fp32 / "model.safetensors")
    assert got.keys() == want.keys()
    # Never through 4-bit: the QLoRA adapter lands on the same full-precision base as the LoRA one.
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_full_run_is_resaved(tmp_path, tiny_model_dir, run_dir):
    import yaml
    from safetensors.torch import load_file

    from wizard.export.merge import merge_run

    full = tmp_path / "full-20250101-000000"
    shutil.copytree(tiny_model_dir, full / "adapter")
    for name in ("run.json", "state.json"):
        shutil.copy(run_dir / name, full / name)
    spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
    spec.update(method="full", model={"id": str(tiny_model_dir), "hub": "local"})
    (full / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = merge_run(str(full), None, dtype="fp16", log=lambda s: None)
    assert out == full / "merged"
    got, want = load_file(out / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    assert all(torch.equal(got[k], want[k].half()) for k in want)
