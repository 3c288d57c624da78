"""tune-wizard's QLoRA engine beside the common HF recipe, in one process, on one GPU.

Model: Qwen2.5-7B-shaped, random bf16 weights (speed and memory do not depend on the values), saved
once to --cache. Both sides: 4-bit NF4 + double quantization, bf16 compute, LoRA r=8 on q_proj/v_proj,
one 2048-token sequence per step, AdamW, the HF Trainer.

  HF recipe:    BitsAndBytesConfig + prepare_model_for_kbit_training + gradient checkpointing + peft
  tune-wizard:  wizard.engine.loader.build_model + training_args.build_args, with checkpointing on
                (like for like) and with the engine's `auto` choice

Usage (GPU machine): python bench/qlora_vs_hf_recipe.py [--steps 12] [--seq 2048] [--out bench/results]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QWEN7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
              num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768, rope_theta=1e6,
              tie_word_embeddings=False, rms_norm_eps=1e-6)


def make_checkpoint(path: Path) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if (path / "config.json").is_file():
        return path
    t = time.time()
    cfg = Qwen2Config(**QWEN7B, dtype="bfloat16")
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(path, max_shard_size="5GB")
    del model
    torch.cuda.empty_cache()
    print(f"random 7B checkpoint written in {time.time() - t:.0f} s", flush=True)
    return path


class Rows(torch.utils.data.Dataset):
    def __init__(self, n, seq, vocab, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(100, vocab - 100, (n, seq), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i].tolist()
        return {"input_ids": ids, "labels": ids}


def collate(rows):
    ids = torch.tensor([r["input_ids"] for r in rows])
    return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}


class Timer:
    def __init__(self, warmup):
        self.warmup, self.times, self.t = warmup, [], None

    def callback(self):
        from transformers import TrainerCallback

        outer = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                torch.cuda.synchronize()
                outer.t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                torch.cuda.synchronize()
                outer.times.append(time.perf_counter() - outer.t)
        return CB()

    def step_s(self):
        timed = self.times[self.warmup:]
        return sum(timed) / len(timed)


def train(model, steps, seq, tmp, extra_args: dict):
    from transformers import Trainer, TrainingArguments

    timer = Timer(warmup=3)
    args = dict(output_dir=str(tmp), max_steps=steps, per_device_train_batch_size=1, gradient_accumulation_steps=1,
                learning_rate=2e-4, optim="adamw_torch", bf16=True, logging_steps=1000, save_strategy="no",
                report_to="none", disable_tqdm=True, remove_unused_columns=False, lr_scheduler_type="constant")
    args.update(extra_args)
    trainer = Trainer(model=model, args=TrainingArguments(**args), train_dataset=Rows(steps, seq, QWEN7B["vocab_size"]),
                      data_collator=collate, callbacks=[timer.callback()])
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    step = timer.step_s()
    return {"step_s": round(step, 4), "tokens_per_s": round(seq / step, 1),
            "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 2)}


def hf_recipe(path, steps, seq, tmp):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb, dtype=torch.bfloat16,
                                                 device_map={"": 0})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    return train(model, steps, seq, tmp, {"gradient_checkpointing": True})


def tune_wizard(path, steps, seq, tmp, ckpt_mode):
    from wizard.engine import loader
    from wizard.engine.training_args import choose_gradient_checkpointing
    from wizard.spec import from_dict

    spec = from_dict({"model": {"id": str(path), "hub": "local"}, "method": "qlora",
                      "lora": {"r": 8, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
                      "data": {"train": "unused.jsonl", "max_length": seq},
                      "train": {"batch_size": 1, "grad_accum": 1, "gradient_checkpointing": ckpt_mode}})
    precision = loader.choose_precision("auto", "qlora")
    ckpt, why = choose_gradient_checkpointing(spec, Path(path))
    model, _ = loader.build_model(spec, Path(path), precision, ckpt)
    out = train(model, steps, seq, tmp, {})
    out.update(gradient_checkpointing=ckpt, why=why)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--cache", default="/tmp/qwen2.5-7b-random")
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    path = make_checkpoint(Path(a.cache))
    gpu = torch.cuda.get_device_name(0)
    results = {"gpu": gpu, "model": "Qwen2.5-7B shape, random bf16 weights", "seq_len": a.seq, "steps": a.steps,
               "timed_steps": a.steps - 3, "versions": {m: __import__(m).__version__ for m in
                                                        ("torch", "transformers", "peft", "bitsandbytes")}}
    cases = [("hf_recipe", lambda: hf_recipe(path, a.steps, a.seq, "/tmp/bench-hf")),
             ("tune_wizard_ckpt_on", lambda: tune_wizard(path, a.steps, a.seq, "/tmp/bench-tw", "on")),
             ("tune_wizard_auto", lambda: tune_wizard(path, a.steps, a.seq, "/tmp/bench-tw2", "auto"))]
    for name, fn in cases:
        try:
            results[name] = fn()
        except Exception as exc:  # record and go on: one failing case must not lose the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        print(name, results[name], flush=True)
        gc.collect()
        torch.cuda.empty_cache()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = gpu.replace(" ", "_").replace("/", "_")
    (out / f"qlora_vs_hf_recipe_{tag}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
