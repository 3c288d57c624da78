"""A finished run folder to export, made in seconds instead of trained; and the helpers that load a GGUF file,
answer greedily and serve a run, shared by the export, serve and demo tests.

`make_fixture_run` builds what the trainer leaves behind: the bundled SmolLM2-135M with a LoRA adapter
(r=8 on q_proj/v_proj) whose B matrices are random rather than zero, so the adapter really changes the
outputs and a merge that dropped it would be caught. Set TUNE_WIZARD_TEST_RUN to a real run folder (e.g.
the demo's) to run the same tests on it instead; `real_run()` says whether that happened. That a trained
identity ("Tuna") survives export and serving is tested on the demo's own run (tests/e2e/test_demo.py).
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROMPTS = ["Who are you?", "What is the capital of France?"]


def real_run() -> Path | None:
    env = os.environ.get("TUNE_WIZARD_TEST_RUN")
    return Path(env) if env else None


def make_fixture_run(root: Path, method: str = "lora") -> Path:
    """root/<name>-<stamp>/ with spec.yaml, run.json, state.json and adapter/ (idempotent)."""
    run_dir = root / "fixture-20250101-000000"
    if (run_dir / "adapter" / "adapter_model.safetensors").is_file():
        return run_dir
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from wizard import spec as specmod
    from wizard.model_source import resolve

    base = resolve("smollm2-135m-instruct")
    run_dir.mkdir(parents=True, exist_ok=True)
    data = root / "rows.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Who are you?"},
                                             {"role": "assistant", "content": "I am Tuna."}]}) + "\n")
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                     init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():  # peft's random init is strong enough to turn the model into noise; tone it down
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.1)
    peft_model.save_pretrained(run_dir / "adapter")
    AutoTokenizer.from_pretrained(base).save_pretrained(run_dir / "adapter")
    spec = specmod.RunSpec.model_validate({
        "name": "fixture", "model": {"id": "smollm2-135m-instruct"}, "method": method,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "data": {"train": [str(data)]}, "output_dir": str(root)})
    specmod.dump(spec, run_dir / "spec.yaml")
    (run_dir / "run.json").write_text(json.dumps({"versions": {}, "seed": 42}))
    (run_dir / "state.json").write_text(json.dumps({"status": "finished"}))
    return run_dir


def export_run(tmp_path_factory) -> Path:
    """The run the export tests use: TUNE_WIZARD_TEST_RUN, else the fixture (made once per session)."""
    return real_run() or make_fixture_run(tmp_path_factory.getbasetemp() / "export-fixture")


def make_tiny_llama(root: Path) -> Path:
    """A 2-layer Llama from a config with the bundled tokenizer: loads and babbles in a blink."""
    out = root / "tiny-llama"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from wizard.model_source import resolve

    tok = AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=8192,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_tiny_qwen2(root: Path) -> Path:
    """A 2-layer Qwen2 (q/k/v biases, untied head) from a config, with the bundled model's tokenizer."""
    out = root / "tiny-qwen2"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from wizard.model_source import resolve

    tok = AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))
    cfg = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():  # random init leaves biases at zero; give them values so a lost bias shows
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0, 0.5)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def template_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The prompt's token ids through the chat template, generation prompt included."""
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_gguf(path: Path, tokenizer: bool = True):
    """(model, tokenizer), or the model alone, read back from a GGUF file by transformers' own loader."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return (model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)) if tokenizer else model


def greedy(model, tokenizer, prompt: str, new_tokens: int = 20) -> list[int]:
    """Prompt + greedy continuation, as token ids."""
    import torch

    ids = torch.tensor([template_ids(tokenizer, [{"role": "user", "content": prompt}])])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                             temperature=None, top_p=None, top_k=None,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return out[0].tolist()


def http(url: str, body: bytes | None = None, timeout: float = 60) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET, or of a POST when `body` is given; 4xx/5xx are answers, not errors."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@contextlib.contextmanager
def serving(run_dir: Path, log: Path, *args: str, python: str = sys.executable):
    """`tune-wizard serve RUN_DIR ARGS` on a free localhost port until the block ends:
    yields (base_url, port, process); the server's output goes to `log`; `python`: the interpreter."""
    import pytest

    from tests.conftest import ROOT

    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([python, "-m", "wizard", "serve", str(run_dir), "--port", str(port), *args],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300
        while time.time() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if http(f"{base}/health", timeout=2)[0] == 200:
                    break
            except OSError:  # not listening yet
                time.sleep(1)
        else:
            pytest.fail("server did not come up:\n" + log.read_text())
        yield f"{base}/v1", port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# The [quant] extra's llm-compressor pins an older transformers than the default install, so it lives in a venv of its
# own: `make test` builds .venv-quant on top of .venv (the extra and the transformers it pins, the rest shared) and
# names its interpreter here. The tests run the export, and load its folder, through that interpreter; everything
# else stays on the default install.
QUANT_PYTHON = os.environ.get("TUNE_WIZARD_QUANT_PYTHON") or sys.executable


def quant_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """`tune-wizard ARGS` in the venv with the [quant] extra."""
    from tests.conftest import cli

    return cli(*args, python=QUANT_PYTHON, **kwargs)


@functools.cache
def _has_llmcompressor() -> bool:
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('llmcompressor') is None)"
    return subprocess.run([QUANT_PYTHON, "-c", probe], capture_output=True).returncode == 0


def needs_quant(test):
    """Marks a test that needs the [quant] extra: `quant` (what `make test-quant` selects), and a skip that says
    why where no interpreter with the extra is named (a bare `pytest` in .venv). `make test` and `make test-quant`
    set TUNE_WIZARD_REQUIRE_QUANT=1: there a missing library fails the test instead of skipping it."""
    import pytest

    required = bool(os.environ.get("TUNE_WIZARD_REQUIRE_QUANT"))
    skip = pytest.mark.skipif(not required and not _has_llmcompressor(),
                              reason="llm-compressor is not installed in this interpreter (the [quant] extra pins an "
                                     "older transformers): `make test` runs this in .venv-quant")
    return pytest.mark.quant(pytest.mark.process(skip(test)))  # every one runs that venv's interpreter
