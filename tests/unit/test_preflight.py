"""Checks before a run folder exists: output_dir, the model, the disk; each refusal leaves nothing behind."""
from __future__ import annotations

import shutil

import pytest

from tests.helpers import write_spec
from wizard import spec as specmod
from wizard.engine import preflight
from wizard.engine.runner import prepare
from wizard.errors import ModelError, SpecError

# SmolLM2-135M: ~135M parameters; a full fine-tuning checkpoint holds them in float32 on a CPU (4 bytes) and AdamW's
# two float32 states (8 bytes): ~1.6 GB, whatever the estimate's own figure.
FULL_CHECKPOINT_BYTES = 135e6 * 12


def spec_at(tmp_path, model, out, **over):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n')
    return specmod.load(write_spec(tmp_path / "spec.yaml", str(model), data, out, **over))


def test_an_output_dir_that_cannot_be_a_folder_is_named(tmp_path, bundled_model_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    spec = spec_at(tmp_path, bundled_model_dir, blocker / "runs")
    with pytest.raises(SpecError) as e:
        preflight.check_output_dir(spec)
    assert e.value.problems[0].startswith(f"output_dir '{blocker / 'runs'}': cannot write there")
    assert "set output_dir" in e.value.hint and blocker.read_text() == "mine"


def test_a_run_the_disk_cannot_hold_is_refused_with_both_figures(tmp_path, bundled_model_dir):
    free = shutil.disk_usage(tmp_path).free
    too_many = int(free // FULL_CHECKPOINT_BYTES) + 2
    out = tmp_path / "runs"
    spec = spec_at(tmp_path, bundled_model_dir, out, method="full", train={"save_total_limit": too_many})
    with pytest.raises(SpecError) as e:
        prepare(spec, None)
    text = e.value.problems[0]
    assert f"{too_many + 1} checkpoints of ~" in text and f"{free / 1e9:.2f} GB free" in text, text
    assert f"train.save_total_limit, now {too_many}" in e.value.hint
    assert not out.exists() or not any(out.iterdir())  # no run folder was made

    need = preflight.check_disk(spec.model_copy(update={"train": spec.train.model_copy(
        update={"save_total_limit": 1})}), bundled_model_dir)
    assert need.checkpoints == 2 and 0.8 * FULL_CHECKPOINT_BYTES < need.checkpoint_bytes < 1.3 * FULL_CHECKPOINT_BYTES


def test_a_model_that_is_not_there_stops_before_the_run_folder(tmp_path, bundled_model_dir):
    out = tmp_path / "runs"
    spec = spec_at(tmp_path, tmp_path / "no-such-model", out)
    with pytest.raises(ModelError) as e:
        prepare(spec, None)
    assert "no such folder" in e.value.problems[0]
    assert not out.exists() or not any(out.iterdir())
