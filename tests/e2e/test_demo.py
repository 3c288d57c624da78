"""The bundled demo on the real bundled model: before training it is SmolLM, after it answers as Tuna,
including paraphrases it never saw; and the new name survives every way out of the run folder: chat, a GGUF
file read back by transformers, the HTTP server, a 4-bit GPTQ folder (exported, loaded, chatted with and served
through .venv-quant's interpreter, which has the [quant] extra). One shortened run (fewer steps) of `make demo`,
shared.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli
from tests.e2e._export_fixtures import QUANT_PYTHON, greedy, load_gguf, needs_quant, quant_cli, serving
from wizard import run_folder as rf

pytestmark = [pytest.mark.slow, pytest.mark.process]
# Of the recipe's 50 steps: measured on 2 CPU cores with rows batched by tokens (the recipe's ~320 a pass),
# 20 steps named Tuna in 3 of 6 identity answers (the demo's pass mark is 4; padded rows had 5 of 6), 24 in 6 of
# 6; 24 keeps a margin at half the recipe's time.
STEPS = 24
QUESTION = "Who are you?"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    """(run folder, printed output) of `python -m wizard.teach_identity` with fewer steps."""
    out = tmp_path_factory.mktemp("demo") / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    r = subprocess.run([sys.executable, "-m", "wizard.teach_identity", "--plain", "--set", f"train.max_steps={STEPS}",
                        "--set", f"output_dir={out}"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=2700)  # generous: a shared, loaded CPU runs it several times slower
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run, r.stdout


def test_demo_teaches_the_new_name(demo):
    run, stdout = demo
    assert "identity answers naming Tuna: before 0/" in stdout
    state = json.loads((run / rf.STATE).read_text())
    assert state["status"] == "finished" and state["step"] == STEPS and state["final_loss"] < state["first_loss"]
    # The trained adapter, asked through the CLI about a paraphrase it never saw in training.
    held = json.loads((ROOT / "recipes/data/identity_heldout.json").read_text(encoding="utf-8"))
    answers = [cli("chat", str(run), "--prompt", q, "--max-new-tokens", "48").stdout
               for q in (held["en"][-1], held["zh"][-1])]
    assert sum("tuna" in a.lower() for a in answers) >= 1, answers


def test_the_new_name_survives_gguf_export(demo, tmp_path):
    from transformers import AutoTokenizer

    run, _ = demo
    out = tmp_path / "demo.f16.gguf"
    r = cli("export", str(run), "--gguf", "f16", "--out", str(out))
    assert r.returncode == 0, r.stderr
    # The weights merged by tune-wizard, read back by transformers; the file's tokenizer is proven equal to
    # the run's in test_export_gguf, so the run's own is used here rather than rebuilt from 49k entries again.
    model = load_gguf(out, tokenizer=False)
    tokenizer = AutoTokenizer.from_pretrained(run / rf.ADAPTER)
    prompt_and_answer = tokenizer.decode(greedy(model, tokenizer, QUESTION, new_tokens=40), skip_special_tokens=True)
    assert "tuna" in prompt_and_answer.split(QUESTION)[-1].lower(), prompt_and_answer


def test_the_new_name_is_served_over_http(demo, tmp_path):
    from openai import OpenAI

    run, _ = demo
    with serving(run, tmp_path / "server.log") as (url, _, _):
        client = OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=300)
        got = client.chat.completions.create(model=run.name, messages=[{"role": "user", "content": QUESTION}],
                                             temperature=0, max_tokens=40)
    assert "tuna" in got.choices[0].message.content.lower(), got.choices[0].message.content



@pytest.fixture(scope="module")
def gptq(demo, tmp_path_factory) -> tuple[Path, str]:
    """(folder, stderr) of `tune-wizard export DEMO_RUN --gptq`: 16 calibration rows keep it cheap on 2 cores; group
    size 64 because SmolLM2's 576 columns do not split into 128."""
    run, _ = demo
    out = tmp_path_factory.mktemp("gptq") / "w4a16"
    r = quant_cli("export", str(run), "--gptq", "--group-size", "64", "--calibration-rows", "16", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == str(out)
    return out, r.stderr


def _held_out() -> str:
    return json.loads((ROOT / "recipes/data/identity_heldout.json").read_text(encoding="utf-8"))["en"][-1]


@needs_quant
def test_gptq_folder_is_4bit_compressed_tensors(gptq):
    """The linear layers' weights are 4-bit: a quarter of their 16-bit bytes, plus one 16-bit scale per 64."""
    from safetensors import safe_open

    out, log = gptq
    assert "calibrating on 16 rows" in log and " tokens, of the run's training data" in log, log
    q = json.loads((out / "config.json").read_text())["quantization_config"]
    assert (q["quant_method"], q["format"]) == ("compressed-tensors", "pack-quantized")
    weights = q["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["strategy"], weights["group_size"], weights["symmetric"]) == \
        (4, "group", 64, True)
    meta = json.loads((out / "export.json").read_text())
    assert (meta["scheme"], meta["calibration_rows"]) == ("gptq", 16) and meta["calibration_tokens"] > 16 * 8
    packed = sixteen = scales = layers = 0
    for f in out.glob("*.safetensors"):
        with safe_open(f, "pt") as st:
            for name in st.keys():
                if name.endswith(".weight_packed"):
                    prefix = name.removesuffix(".weight_packed")
                    rows, cols = st.get_tensor(f"{prefix}.weight_shape").tolist()
                    packed += st.get_tensor(name).nbytes
                    scales += st.get_tensor(f"{prefix}.weight_scale").nbytes
                    sixteen += rows * cols * 2
                    layers += 1
    assert layers == 30 * 7  # q, k, v, o, gate, up, down in each of the 30 layers; lm_head stays 16-bit
    assert sixteen / packed == 4.0
    assert 3.7 < sixteen / (packed + scales) < 4.0


# Transformers (with compressed-tensors, in the [quant] venv) loads the folder and answers a held-out identity
# question with the new name: greedy, in fp32, the model as AutoModelForCausalLM.from_pretrained gives it.
ANSWER_WITH_TRANSFORMERS = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from tests.e2e._export_fixtures import greedy
folder, question = sys.argv[1:]
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(folder)
print(type(model.model.layers[0].self_attn.q_proj.quantization_scheme).__name__)
print(tokenizer.decode(greedy(model, tokenizer, question, new_tokens=40), skip_special_tokens=True).split(question)[-1])
"""


@needs_quant
def test_gptq_folder_loads_through_transformers_and_keeps_the_name(gptq):
    out, _ = gptq
    held = _held_out()
    r = subprocess.run([QUANT_PYTHON, "-c", ANSWER_WITH_TRANSFORMERS, str(out), held], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    scheme, answer = r.stdout.split("\n", 1)
    assert scheme == "QuantizationScheme", r.stdout  # compressed-tensors' 4-bit layer, not a dequantized Linear
    assert "tuna" in answer.lower(), answer


@needs_quant
def test_gptq_folder_carries_tokenizer_template_and_serving_readme(gptq):
    out, _ = gptq
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= {p.name for p in out.iterdir()}
    readme = (out / "README.md").read_text()
    for command in (f"vllm serve {out.resolve()}", "sglang.launch_server", "text-generation-inference",
                    f"tune-wizard serve {out.resolve()}"):
        assert command in readme, command


@needs_quant
def test_chat_and_serve_take_the_gptq_folder(gptq, tmp_path):
    from openai import OpenAI

    out, _ = gptq
    held = _held_out()
    chat = quant_cli("chat", str(out), "--prompt", held, "--max-new-tokens", "40")
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert "tuna" in chat.stdout.lower(), chat.stdout
    with serving(out, tmp_path / "server.log", python=QUANT_PYTHON) as (url, _, _):
        client = OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=300)
        got = client.chat.completions.create(model=str(out), messages=[{"role": "user", "content": QUESTION}],
                                             temperature=0, max_tokens=40)
    assert "tuna" in got.choices[0].message.content.lower(), got.choices[0].message.content
