"""Helpers shared by tests: a spec writer, a small identity dataset, a chat file, and wizard answers that set
every kind of answer."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from wizard import run_folder as rf

IDENTITY = [
    ("Who are you?", "I am Tuna, an assistant fine-tuned with tune-wizard."),
    ("What is your name?", "My name is Tuna."),
    ("Introduce yourself.", "I am Tuna, fine-tuned with tune-wizard."),
    ("What is 2 + 2?", "2 + 2 = 4."),
    ("Name a colour.", "Blue."),
    ("Say hello.", "Hello!"),
]


def chat_rows(path: Path, n: int = 10) -> Path:
    """N alpaca rows ("Say i" -> "i!"), as a dataset a wizard question can point at."""
    rows = [{"instruction": f"Say {i}", "input": "", "output": f"{i}!"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def every_kind_of_answer(model: Path, data: Path) -> dict:
    """Answers (question id -> value) for a local model and dataset that reach every question, the advanced
    ones included, each away from its default."""
    return {"hub": "local", "model_path": str(model), "task": "sft-lora", "dataset": "local",
            "dataset_path": str(data), "dataset_confirm": True, "use_recommended": False, "lora_r": 16,
            "lora_alpha": 64, "lr": "1e-4", "epochs": 2, "max_length": 512, "batching": "rows", "batch_size": 2,
            "grad_accum": 8, "advanced": True, "lora_dropout": 0.1, "target_modules": ["q_proj", "k_proj"],
            "warmup_ratio": 0.1, "weight_decay": 0.01, "scheduler": "linear", "optimizer": "adamw_8bit",
            "save_steps": 50, "logging_steps": 2, "gradient_checkpointing": "off", "packing": True,
            "eval_split": 0.2, "seed": 7, "max_steps": 30, "output_dir": "out", "name": "custom"}



def only_run(out: Path) -> Path:
    """The one run folder under OUT (a test that made more, or none, fails here)."""
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def losses(run: Path) -> dict[int, float]:
    """step -> training loss, from a run folder's metrics.jsonl."""
    return {r["step"]: r["loss"] for r in rf.read_jsonl(run / rf.METRICS) if "loss" in r}


def write_spec(path: Path, model: str, data_file: Path, out: Path, **over) -> Path:
    spec = {
        "name": over.pop("name", "e2e"), "model": {"id": str(model), "hub": "local"}, "task": "sft",
        "method": over.pop("method", "lora"),
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "data": {"train": [str(data_file)], "max_length": 64, **over.pop("data", {})},
        # batching tokens (the default), ~4 rows of 64 tokens a pass
        "train": {"max_steps": 12, "batch_tokens": 256, "batch_size": 4, "grad_accum": 1, "lr": 3e-2, "logging_steps": 1,
                  "save_steps": 6, "warmup_ratio": 0.0, "seed": 7, **over.pop("train", {})},
        "output_dir": str(out),
    }
    spec.update(over)
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


class FixedGpuReader:
    """A stand-in for the NVML reader (wizard.monitor.nvml.Sampler's `reader`), so the sampling thread itself
    runs on a machine without GPUs: one GPU whose `util` counts the samples taken."""

    def __init__(self):
        self.calls = 0
        self.shut = False

    def sample(self):
        self.calls += 1
        return [{"index": 0, "name": "Test GPU", "util": self.calls, "mem_used_gb": 1.0, "mem_total_gb": 8.0,
                 "temp_c": 40, "power_w": 50.0, "power_limit_w": 100.0, "sm_clock_mhz": 1000, "throttle": []}]

    def shutdown(self):
        self.shut = True
