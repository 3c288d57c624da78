"""`tune-wizard chat`: one-shot --prompt, and the interactive chat driven through a real pseudo-terminal."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import ROOT, cli
from tests.e2e._export_fixtures import export_run, make_tiny_llama

pytestmark = pytest.mark.process
PIRATE = "You are a pirate. Answer like one."


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return export_run(tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def pirate_answer(run_dir) -> str:
    r = cli("chat", str(run_dir), "--prompt", "Who are you?", "--system", PIRATE, "--max-new-tokens", "12")
    assert r.returncode == 0, r.stderr
    assert "loading" in r.stderr  # progress goes to stderr, so stdout is the answer alone
    return r.stdout


def spawn(*args: str, timeout: float = 300) -> pexpect.spawn:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "dumb", "NO_COLOR": "1"}
    return pexpect.spawn(sys.executable, ["-m", "wizard", "chat", *args], cwd=str(ROOT), env=env,
                         encoding="utf-8", timeout=timeout, dimensions=(40, 200))


def exchange(child: pexpect.spawn, line: str) -> str:
    """Send one line at the prompt; return what came back before the next prompt."""
    child.sendline(line)
    child.expect_exact("you> ")
    return child.before


def test_prompt_prints_one_answer(pirate_answer):
    assert pirate_answer.strip() and "loading" not in pirate_answer  # stdout carries the answer alone


def test_bad_ref_is_named(tmp_path):
    missing = tmp_path / "no-such-run"
    r = cli("chat", str(missing), "--prompt", "hi")
    assert r.returncode == 2
    assert str(missing) in r.stderr and "Traceback" not in r.stderr


def test_repl_system_question_reset_exit(run_dir, pirate_answer):
    expected = pirate_answer.strip()
    child = spawn(str(run_dir), "--temperature", "0", "--max-new-tokens", "12")
    child.expect_exact("/reset")  # the banner lists the commands
    child.expect_exact("you> ")
    assert "(system prompt set)" in exchange(child, "/system " + PIRATE)
    got = exchange(child, "Who are you?")
    assert "model> " in got
    # Same model, same system prompt, greedy: the chat's streamed answer is the one-shot answer.
    assert " ".join(got.split("model> ", 1)[1].split()) == " ".join(expected.split())
    assert "(conversation cleared)" in exchange(child, "/reset")
    assert "unknown command /nope" in exchange(child, "/nope")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_stops_an_answer_then_leaves_with_130(tiny_model):
    # A tiny random model babbles until max_new_tokens: a long answer to interrupt.
    child = spawn(str(tiny_model), "--temperature", "0", "--max-new-tokens", "5000")
    child.expect_exact("you> ")
    child.sendline("Tell me a long story.")
    child.expect_exact("model> ")
    child.expect(r"\S+ \S+ ")  # some tokens have streamed out
    child.sendintr()
    child.expect_exact("[stopped]")
    child.expect_exact("you> ")
    assert "(conversation cleared)" in exchange(child, "/reset")  # still alive and answering commands
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130


def test_end_of_input_leaves_with_0(tiny_model):
    child = spawn(str(tiny_model))
    child.expect_exact("you> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
