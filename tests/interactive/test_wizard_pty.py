"""`tune-wizard init` driven through a real pseudo-terminal, with the keys a person presses.

Hubs are switched off (TUNE_WIZARD_OFFLINE) so the questions and their defaults don't depend on the
network; `--no-start` stops after the spec (training is tested in tests/e2e).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
import yaml

from wizard import spec as specmod

pytestmark = pytest.mark.process

ENTER, DOWN, CTRL_C, CLEAR, ESC = "\r", "\x1b[B", "\x03", "\x15", "\x1b"  # CLEAR: Ctrl-U, erase the default
TIMEOUT = 90  # the machine is slow and shared: generous per prompt, the whole file stays near a minute
ENV = {**os.environ, "TERM": "xterm-256color", "TUNE_WIZARD_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
       # pexpect is not a terminal that answers cursor-position requests; say so instead of a warning line
       "PROMPT_TOOLKIT_NO_CPR": "1"}
ENV.pop("NO_COLOR", None)
ACCEPT_ALL = ["Where should the model come from", "What kind of training", "Which dataset",
              "Use the recommended settings", "Folder for the runs", "Run name", "Write this spec?"]


def spawn(cwd: Path, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "wizard", "init", *args], cwd=str(cwd), env=ENV,
                          dimensions=(40, 120), encoding="utf-8", timeout=TIMEOUT)
    child.logfile_read = _Tail()
    return child


class _Tail:
    """The screen output so far, for a readable failure message."""

    def __init__(self):
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass

    def plain(self) -> str:
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.text)


def ask(child: pexpect.spawn, prompt: str, keys: str) -> None:
    try:
        child.expect_exact(prompt)
    except pexpect.TIMEOUT:
        pytest.fail(f"no prompt '{prompt}'; the screen ended with:\n{child.logfile_read.plain()[-3000:]}")
    child.send(keys)


POINTED = re.compile(r"» (?:\x1b\[[0-9;]*m)*([^\x1b\r\n]+)")


def choose(child: pexpect.spawn, prompt: str, wanted: str) -> None:
    """Move the select's pointer down to the choice whose title starts with `wanted`, then Enter.

    The pointer starts on the recommended choice, which depends on the machine, so the keys are decided
    by reading the screen, as a person does.
    """
    child.expect_exact(prompt)
    for _ in range(12):
        child.expect(POINTED)
        if child.match.group(1).strip().startswith(wanted):
            child.send(ENTER)
            return
        child.send(DOWN)
    pytest.fail(f"no choice '{wanted}' under '{prompt}'")


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def type_path(child: pexpect.spawn, text: str, next_prompt: str) -> None:
    """Type into a path prompt; the first Enter may only close the completion menu, as for a person."""
    child.send(text)
    child.send(ENTER)
    if child.expect_exact([next_prompt, pexpect.TIMEOUT], timeout=5) == 1:
        child.send(ENTER)
        child.expect_exact(next_prompt)


def test_enter_everywhere_writes_the_defaults_spec(tmp_path):
    a, b = tmp_path / "pty", tmp_path / "scripted"
    a.mkdir()
    b.mkdir()
    child = spawn(a, "--no-start")
    for prompt in ACCEPT_ALL:
        ask(child, prompt, ENTER)
    assert finish(child) == 0, child.logfile_read.plain()[-3000:]
    screen = child.logfile_read.plain()
    assert "this machine" in screen and "Memory estimate" in screen
    [path] = [p for p in a.glob("*.yaml") if not p.name.endswith(".answers.yaml")]
    assert f"tune-wizard run ./{path.name}" in screen
    written = yaml.safe_load(path.read_text())
    # Field by field: the bundled model, the demo data, the demo recipe's measured settings; the method is
    # the estimate's pick for this machine.
    assert written["task"] == "sft" and written["method"] in ("qlora", "lora")
    assert written["name"] == f"smollm2-135m-instruct-sft-{written['method']}" == path.stem
    assert written["model"] == {"id": "smollm2-135m-instruct", "hub": "auto", "trust_remote_code": False}
    assert [Path(p).name for p in written["data"]["train"]] == ["self_cognition.jsonl", "general_chat.jsonl"]
    demo = yaml.safe_load((Path(specmod.__file__).parent.parent / "recipes" / "demo.yaml").read_text())
    for key in ("r", "alpha", "dropout", "target_modules"):
        assert written["lora"][key] == demo["lora"][key], key
    for key in ("epochs", "max_steps", "batching", "batch_tokens", "grad_accum", "lr", "scheduler", "warmup_ratio", "optimizer",
                "seed", "logging_steps", "save_steps", "gradient_checkpointing"):
        assert written["train"][key] == demo["train"][key], key
    assert written["data"]["max_length"] == demo["data"]["max_length"]
    assert written["output_dir"] == "runs"
    assert "# " in path.read_text().splitlines()[4], "every field carries a comment"
    v = subprocess.run([sys.executable, "-m", "wizard", "validate", str(path)], cwd=a, capture_output=True,
                       text=True, timeout=300, env={**ENV, "NO_COLOR": "1"})
    assert v.returncode == 0, v.stdout + v.stderr
    # --defaults must write the very same spec.
    d = subprocess.run([sys.executable, "-m", "wizard", "init", "--defaults", "--no-start"], cwd=b,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, env=ENV)
    assert d.returncode == 0, d.stdout + d.stderr
    assert yaml.safe_load((b / path.name).read_text()) == written


def test_custom_answers_local_dataset_and_advanced_branch(tmp_path):
    rows = [{"instruction": f"Translate {i} to words", "input": "", "output": f"number {i}"} for i in range(12)]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    child = spawn(tmp_path, "--no-start")
    ask(child, "Where should the model come from", ENTER)             # the bundled demo model
    choose(child, "What kind of training", "SFT with LoRA")
    choose(child, "Which dataset", "A local file")
    child.expect_exact("Dataset file")
    child.send(ESC)                                                   # back to the list, as a terminal sends Esc
    choose(child, "Which dataset", "A local file")
    child.expect_exact("Dataset file")
    type_path(child, "mine.jsonl", "Use this dataset?")
    screen = child.logfile_read.plain()
    assert "format alpaca · 12 rows" in screen and "Translate 0 to words" in screen and "number 0" in screen
    child.send("y")
    ask(child, "Use the recommended settings", "n")
    ask(child, "LoRA rank", CLEAR + "32" + ENTER)
    ask(child, "LoRA alpha", CLEAR + "64" + ENTER)
    ask(child, "Learning rate", CLEAR + "fast" + ENTER)               # refused, with the reason
    child.expect_exact("a number")
    child.send(CLEAR + "5e-5" + ENTER)
    ask(child, "Epochs", CLEAR + "2" + ENTER)
    ask(child, "Max length", CLEAR + "512" + ENTER)
    choose(child, "Batching", "rows")
    ask(child, "Rows per forward pass", CLEAR + "2" + ENTER)
    ask(child, "Gradient accumulation", ENTER)                        # default keeps the total at 16: 8
    ask(child, "Change advanced settings", "y")
    ask(child, "LoRA dropout", CLEAR + "0.1" + ENTER)
    ask(child, "LoRA target modules", CLEAR + "q_proj,k_proj,v_proj" + ENTER)
    ask(child, "Stop after N steps", ENTER)
    ask(child, "Warmup ratio", ENTER)
    ask(child, "Weight decay", CLEAR + "0.01" + ENTER)
    choose(child, "Learning-rate schedule", "linear")
    ask(child, "Optimizer", ENTER)
    ask(child, "Save a checkpoint every N steps", CLEAR + "20" + ENTER)
    ask(child, "Log every N steps", ENTER)
    ask(child, "Gradient checkpointing", ENTER)
    ask(child, "Pack short rows together", "y")
    ask(child, "Eval split", CLEAR + "0.25" + ENTER)
    ask(child, "Random seed", CLEAR + "7" + ENTER)
    ask(child, "Folder for the runs", CLEAR + "myruns")
    type_path(child, "", "Run name")
    child.send(CLEAR + "custom" + ENTER)
    ask(child, "Eval split: keep it?", ENTER)                         # 3 eval rows of 12: warned, kept
    ask(child, "Write this spec?", ENTER)
    assert finish(child) == 0, child.logfile_read.plain()[-3000:]
    raw = yaml.safe_load((tmp_path / "custom.yaml").read_text())
    assert raw["data"]["train"] == ["mine.jsonl"]  # beside the spec: written relative to it
    spec = specmod.load(tmp_path / "custom.yaml")
    assert (spec.task, spec.method, spec.name, spec.output_dir) == ("sft", "lora", "custom", "myruns")
    assert (spec.lora.r, spec.lora.alpha, spec.lora.dropout) == (32, 64, 0.1)
    assert spec.lora.target_modules == ["q_proj", "k_proj", "v_proj"]
    t = spec.train
    assert (t.lr, t.epochs, t.batch_size, t.grad_accum, t.max_steps) == (5e-5, 2, 2, 8, -1)
    assert (t.weight_decay, t.scheduler, t.optimizer, t.save_steps, t.logging_steps, t.seed) == (
        0.01, "linear", "adamw_torch", 20, 1, 7)  # logging: scaled to the 2 updates 9 rows of 2 x 8 make
    assert t.gradient_checkpointing == "auto"  # the recommendation (batching tokens) leaves it to the run
    assert (spec.data.max_length, spec.data.packing, spec.data.eval_split) == (512, True, 0.25)


@pytest.mark.parametrize("stop_at", ["What kind of training", "Run name"])
def test_ctrl_c_exits_130_and_writes_nothing(tmp_path, stop_at):
    child = spawn(tmp_path, "--no-start")
    for prompt in ACCEPT_ALL:
        if prompt == stop_at:
            ask(child, prompt, CTRL_C)
            break
        ask(child, prompt, ENTER)
    assert finish(child) == 130
    assert "cancelled; nothing written" in child.logfile_read.plain()
    assert list(tmp_path.iterdir()) == []


def test_cancel_at_the_review_exits_0_and_writes_nothing(tmp_path):
    """Cancel is an answer, not an interruption: exit 0 (Ctrl-C is 130), and no spec or answers file."""
    child = spawn(tmp_path, "--no-start")
    for prompt in ACCEPT_ALL[:-1]:
        ask(child, prompt, ENTER)
    choose(child, "Write this spec?", "Cancel")
    assert finish(child) == 0
    assert "cancelled at the review; nothing written" in child.logfile_read.plain()
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_kept_unless_the_user_says_so(tmp_path):
    out = tmp_path / "spec.yaml"
    out.write_text("keep: me\n")
    child = spawn(tmp_path, "--no-start", "--out", "spec.yaml")
    for prompt in ACCEPT_ALL:
        ask(child, prompt, ENTER)
    ask(child, "./spec.yaml exists. Overwrite it?", ENTER)           # Enter = the default, no
    child.expect_exact("Write the spec to")
    type_path(child, "", "wrote ./spec-2.yaml")                       # its default: the next free name
    assert finish(child) == 0
    assert out.read_text() == "keep: me\n"
    assert specmod.load(tmp_path / "spec-2.yaml").model.id == "smollm2-135m-instruct"
