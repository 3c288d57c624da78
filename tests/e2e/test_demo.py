"""The bundled demo on the real bundled model: before training it is SmolLM, after it answers as Tuna,
including paraphrases it never saw. A shortened run (fewer steps) of `make demo`."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, cli
from wizard import run_folder as rf

pytestmark = pytest.mark.slow


def test_demo_teaches_the_new_name(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    r = subprocess.run([sys.executable, "-m", "wizard.teach_identity", "--plain", "--set", "train.max_steps=40",
                        "--set", f"output_dir={tmp_path / 'runs'}"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=2700)  # generous: a shared, loaded CPU runs it several times slower
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    assert "identity answers naming Tuna: before 0/" in r.stdout
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    state = json.loads((run / rf.STATE).read_text())
    assert state["status"] == "finished" and state["final_loss"] < state["first_loss"]
    # The trained adapter, asked through the CLI about a paraphrase it never saw in training.
    held = json.loads((ROOT / "recipes/data/identity_heldout.json").read_text(encoding="utf-8"))
    answers = [cli("chat", str(run), "--prompt", q).stdout for q in (held["en"][-1], held["zh"][-1])]
    assert sum("tuna" in a.lower() for a in answers) >= 1, answers
