"""Recommendations that use the dataset (wizard.init.schedule): updates per epoch shown, and the logging and
saving intervals scaled so a small dataset still logs and saves several times; a large one keeps them."""
from __future__ import annotations

import io

from rich.console import Console

from tests.helpers import chat_rows
from tests.unit.test_init_flow import offline, wizard  # noqa: F401
from tests.unit.test_questions import _machine
from wizard import spec as specmod
from wizard.init.context import Context
from wizard.init.flow import run_wizard
from wizard.init.schedule import MIN_LOGS, MIN_SAVES, scaled, updates


def test_nineteen_rows_log_every_update_and_say_how_many_there_are(tmp_path):
    data = chat_rows(tmp_path / "d.jsonl", n=19)
    path, _, screen = wizard(tmp_path, {"hub": "demo", "task": "sft-lora", "dataset": str(data)}, defaults=True)
    t = specmod.load(path).train
    # 19 short rows are one update an epoch (a pass holds a max_length of tokens): 3 updates in 3 epochs.
    assert "~1 update per epoch of 19 rows, ~3 in all; a log line every 1, a checkpoint every 1" in screen
    assert (t.epochs, t.logging_steps, t.save_steps) == (3, 1, 1)


def test_rows_batching_counts_rows_per_update(tmp_path):
    # DPO batches rows: 200 pairs at 1 x 16 are 13 updates an epoch, 39 in 3 epochs.
    ctx = Context(hardware=_machine(None), cwd=tmp_path, no_start=True,
                  preset={"hub": "demo", "task": "dpo-lora", "dataset": "bundled:preference_demo", "name": "p"})
    buf = io.StringIO()
    path, _ = run_wizard(ctx, Console(file=buf, width=200, color_system=None), interactive=False,
                         use_defaults=True, answers_file="lab.yaml")
    t = specmod.load(path).train
    assert (t.batch_size, t.grad_accum, t.epochs) == (1, 16, 3)
    assert "~13 updates per epoch of 200 rows, ~39 in all" in buf.getvalue()
    assert (t.logging_steps, t.save_steps) == (39 // MIN_LOGS, 39 // MIN_SAVES) == (3, 19)


def test_a_large_dataset_keeps_the_recommended_intervals():
    v = {"batching": "rows", "batch_size": 1, "grad_accum": 16, "epochs": 3, "max_steps": -1, "eval_split": 0.0}
    big = updates(v, 100_000, 300.0)
    assert (big.per_epoch, big.total) == (6250, 18750)
    assert scaled(5, big.total, MIN_LOGS) == 5 and scaled(100, big.total, MIN_SAVES) == 100
    # max_steps is the run's length when set, as the Trainer counts; the eval split leaves fewer rows to train.
    assert updates({**v, "max_steps": 50}, 100_000, 300.0).total == 50
    assert updates({**v, "eval_split": 0.5}, 32, None).rows == 16
    assert updates(v, None, None) is None  # a hub dataset without #N: unknown
