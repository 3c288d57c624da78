"""End to end through the real CLI: qlora, lora and full train a tiny real model; resume is exact."""
from __future__ import annotations

import json

import pytest

from tests.conftest import cli
from tests.helpers import losses, only_run, write_spec
from wizard import run_folder as rf
from wizard import spec as specmod

pytestmark = [pytest.mark.slow, pytest.mark.process]




@pytest.mark.parametrize("method", ["qlora", "lora", "full"])
def test_each_method_trains_and_fills_the_run_folder(tmp_path, tiny_model_dir, identity_jsonl, method):
    # A tiny model built from a config: every method's path end to end in seconds. That the adapter methods
    # teach the real bundled model is the demo's test (tests/e2e/test_demo.py, QLoRA) and DPO's.
    spec = write_spec(tmp_path / "spec.yaml", tiny_model_dir, identity_jsonl, tmp_path / "runs", method=method,
                      name=f"t-{method}")
    r = cli("run", str(spec), "--plain")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    run = only_run(tmp_path / "runs")
    assert run.name.startswith(f"t-{method}-")
    for f in (rf.SPEC, rf.RUN_INFO, rf.STATE, rf.METRICS, rf.LOG, rf.LOSS_PLOT):
        assert (run / f).is_file(), f
    assert rf.complete_checkpoints(run), "no complete checkpoint"
    adapter = run / rf.ADAPTER
    assert (adapter / ("model.safetensors" if method == "full" else "adapter_model.safetensors")).is_file()
    info = json.loads((run / rf.RUN_INFO).read_text())
    assert info["seed"] == 7 and info["versions"]["torch"] and info["versions"]["transformers"]
    state = json.loads((run / rf.STATE).read_text())
    assert state["status"] == "finished" and state["step"] == 12
    rows = rf.read_jsonl(run / rf.METRICS)
    for key in ("step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "eta_s", "peak_mem_gb"):
        assert key in rows[-1], key
    ls = list(losses(run).values())
    if method == "full":
        assert sum(ls[-3:]) / 3 < 0.8 * sum(ls[:3]) / 3, ls
    else:
        # Adapters on a random frozen model move its loss only a little in 12 steps (their effect on the real
        # model is the demo's test); that they trained: the loss fell and every lora_B left its zero start.
        from safetensors.torch import load_file

        assert sum(ls[-3:]) / 3 < sum(ls[:3]) / 3, ls
        b = {k: t for k, t in load_file(str(adapter / "adapter_model.safetensors")).items() if "lora_B" in k}
        assert b and all(t.abs().max() > 0 for t in b.values()), [k for k, t in b.items() if not t.abs().max()]
    # One plain line per logging step, no escape codes.
    assert "step 12/12" in r.stdout and "\x1b[" not in r.stdout
    # The saved spec repeats the run: it loads as the spec that was run (full fine-tuning has no lora section).
    unused = {"lora"} if method == "full" else set()
    assert specmod.load(run / rf.SPEC).model_dump(exclude=unused) == specmod.load(spec).model_dump(exclude=unused)
