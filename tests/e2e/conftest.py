"""Tiny real models and datasets for end-to-end runs on the CPU."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

IDENTITY = [
    ("Who are you?", "I am Tuna, an assistant fine-tuned with tune-wizard."),
    ("What is your name?", "My name is Tuna."),
    ("Introduce yourself.", "I am Tuna, fine-tuned with tune-wizard."),
    ("What is 2 + 2?", "2 + 2 = 4."),
    ("Name a colour.", "Blue."),
    ("Say hello.", "Hello!"),
]


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


def write_spec(path: Path, model: str, data_file: Path, out: Path, **over) -> Path:
    spec = {
        "name": over.pop("name", "e2e"), "model": {"id": str(model), "hub": "local"}, "task": "sft",
        "method": over.pop("method", "lora"),
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "data": {"train": [str(data_file)], "max_length": 64, **over.pop("data", {})},
        "train": {"max_steps": 12, "batch_size": 4, "grad_accum": 1, "lr": 3e-2, "logging_steps": 1,
                  "save_steps": 6, "warmup_ratio": 0.0, "seed": 7, **over.pop("train", {})},
        "output_dir": str(out),
    }
    spec.update(over)
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path
