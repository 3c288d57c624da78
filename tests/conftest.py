"""Shared fixtures: the repo root, a CLI runner in a subprocess, the bundled model's folder, a tiny
Llama built from a config with the real tokenizer, a small identity dataset; and the check that keeps the
`process` marker true."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import IDENTITY

ROOT = Path(__file__).resolve().parent.parent

# Under pytest-xdist (`make test`: two workers on two cores) each worker, and every process a test starts,
# computes on one thread. Two torch processes with a thread per core each oversubscribe the cores, and OpenMP's
# spinning threads then steal them from the thread with the work: the demo trained 3x slower that way. Set
# before torch is imported (by any test module), inherited by the CLI, server and training processes.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

# A suite started in the background by a shell without job control (`make test &` in a script, `nohup ... &`)
# inherits SIGINT ignored, and so would every process a test starts: Ctrl-C would reach none of them and the
# Ctrl-C tests would hang. A Python handler, unlike "ignored", is reset to the default in a child at exec, so each
# child starts with Python's KeyboardInterrupt as it does from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# `make test-fast` runs only the in-process tier (-m "not slow and not process"). The interpreter's audit events
# see every process a test starts, through subprocess, pexpect's pty fork or a plain fork, so a test that starts
# one without the `process` marker fails here instead of slowing that tier down unnoticed.
PROCESS_EVENTS = {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.system"}
_started: list[str] = []


# Libraries ask the system about itself with a quick process of their own (modelscope's user agent runs
# `uname -p`, ctypes.util.find_library runs ldconfig or gcc), whenever a test happens to reach that code
# first; those are not the processes this tier is about.
LIBRARY_PROBES = {"uname", "ldconfig", "gcc", "cc", "ld", "objdump", "ldd", "lscpu", "nvidia-smi"}


def _audit(event: str, args: tuple) -> None:
    if event not in PROCESS_EVENTS:
        return
    if event == "subprocess.Popen":
        argv = args[1] if isinstance(args[1], (list, tuple)) else str(args[1]).split()
        if argv and Path(str(argv[0])).name in LIBRARY_PROBES:
            return
        _started.append(f"{args[1]}"[:200])
    else:
        _started.append(event)


sys.addaudithook(_audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _no_unmarked_process(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _no_unmarked_process(item))


def _no_unmarked_process(item):
    _started.clear()
    result = yield
    if _started and item.get_closest_marker("process") is None:
        pytest.fail(f"{item.nodeid} started a process ({_started[0]}) but is not marked `process`: add "
                    "@pytest.mark.process (or a module pytestmark) so `make test-fast` leaves it out", pytrace=False)
    return result


def cli(*args: str, cwd: Path | None = None, timeout: float = 900, env: dict | None = None,
        python: str = sys.executable) -> subprocess.CompletedProcess:
    """Run `tune-wizard ARGS` as a user would (a real process), capturing its output; `python`: the interpreter
    (another venv's, e.g. the one with the [quant] extra)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(env or {})}
    return subprocess.run([python, "-m", "wizard", *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def bundled_model_dir() -> Path:
    from wizard.model_source import resolve

    return resolve("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bundled_model_dir) -> Path:
    """A 2-layer Llama built from a config, with the bundled model's real tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(bundled_model_dir)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def identity_jsonl(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("data") / "identity.jsonl"
    with p.open("w", encoding="utf-8") as fh:
        for _ in range(4):
            for q, a in IDENTITY:
                fh.write(json.dumps({"messages": [{"role": "user", "content": q},
                                                  {"role": "assistant", "content": a}]}) + "\n")
    return p
