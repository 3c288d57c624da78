"""QLoRA DPO on a Qwen2.5-7B shape: tune-wizard's DPO engine beside TRL's usual QLoRA recipe, one process.

Model: Qwen2.5-7B-shaped, random bf16 weights (speed and memory do not depend on the values), shared with the
other 7B scripts in --cache (written once, ~15 GB), loaded 4-bit NF4 + double quantization, bf16 compute,
LoRA r=8 on q_proj/v_proj. Data: synthetic preference pairs, prompt 512 + answer 512 tokens (so each pair is
two 1024-token sequences through the policy, and two through the reference), one pair per step, AdamW.
A word-level tokenizer over the model's 152,064 ids ("t0 t1 ...") makes the lengths exact without a download.

  trl_recipe:              BitsAndBytesConfig + prepare_model_for_kbit_training + peft + DPOTrainer with TRL's
                           defaults (gradient checkpointing on, bf16 adapters)
  tune_wizard_ckpt_on:     wizard.engine.loader.build_model + dpo.build_trainer, checkpointing on (like for like)
  tune_wizard_auto:        the same with the engine's `auto` checkpointing choice

tokens/s counts the policy's tokens: 2 x 1024 per pair / step time (the reference forward is part of the step).
Peak memory is torch.cuda.max_memory_allocated() over the training steps.

Usage (GPU machine): source bench/gpu_env.sh && python3 bench/dpo_qlora_7b.py [--steps 10] [--out bench/results]
Check the script anywhere (a tiny shape, CPU allowed, nothing written to bench/results): --smoke
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from qlora_vs_hf_recipe import QWEN7B, Timer, make_checkpoint  # noqa: E402  (same checkpoint, same timer)

PROMPT, ANSWER, WARMUP = 512, 512, 3
SHAPE = dict(QWEN7B)
TEMPLATE = ("{% for m in messages %}{{ m['content'] }}{% if m['role'] == 'assistant' %}{{ ' ' + eos_token }}"
            "{% endif %}{{ ' ' }}{% endfor %}")


def ensure_tokenizer(path: Path):
    """One word per id: "t17 t4242 ..." is exactly as many tokens as words. Saved beside the weights."""
    from transformers import PreTrainedTokenizerFast

    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(path)
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"t{i}": i for i in range(SHAPE["vocab_size"] - 2)}
    vocab["<unk>"], vocab["<|endoftext|>"] = SHAPE["vocab_size"] - 2, SHAPE["vocab_size"] - 1
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="<|endoftext|>",
                                  pad_token="<|endoftext|>")
    tok.chat_template = TEMPLATE
    tok.save_pretrained(path)
    return PreTrainedTokenizerFast.from_pretrained(path)


def pairs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def words(k):
        return " ".join(f"t{rng.randrange(100, SHAPE['vocab_size'] - 100)}" for _ in range(k))

    # The answer's last token is the eos the template appends.
    return [{"prompt": [{"role": "user", "content": words(PROMPT)}],
             "chosen": [{"role": "assistant", "content": words(ANSWER - 1)}],
             "rejected": [{"role": "assistant", "content": words(ANSWER - 1)}],
             "where": f"synthetic:{i + 1}"} for i in range(n)]


def measure(trainer, timer: Timer) -> dict:
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    step = timer.step_s()
    lengths = trainer.train_dataset[0]
    tokens = len(lengths["prompt_ids"]) * 2 + len(lengths["chosen_ids"]) + len(lengths["rejected_ids"])
    rows = [r for r in trainer.state.log_history if "rewards/margins" in r]
    return {"step_s": round(step, 4), "tokens_per_step": tokens, "tokens_per_s": round(tokens / step, 1),
            "pairs_per_s": round(1 / step, 3),
            "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None,
            # One log at the last step: a finite loss and a reward margin show the step did real work.
            "last_loss": rows[-1].get("loss") if rows else None,
            "last_margin": rows[-1].get("rewards/margins") if rows else None}


def common_args(tmp: str, steps: int) -> dict:
    return dict(output_dir=tmp, max_steps=steps, per_device_train_batch_size=1, gradient_accumulation_steps=1,
                learning_rate=5e-5, optim="adamw_torch", bf16=True, logging_steps=steps, save_strategy="no",
                report_to="none", disable_tqdm=True, lr_scheduler_type="constant", remove_unused_columns=False,
                use_cpu=not torch.cuda.is_available())


def trl_recipe(path: Path, tok, steps: int, tmp: str) -> dict:
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from trl import DPOConfig, DPOTrainer

    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb, dtype=torch.bfloat16,
                                                 device_map={"": 0} if torch.cuda.is_available() else None)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05,
                                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    rows = [{k: ex[k] for k in ("prompt", "chosen", "rejected")} for ex in pairs(steps)]
    timer = Timer(warmup=WARMUP)
    cfg = DPOConfig(**common_args(tmp, steps), gradient_checkpointing=True, max_length=PROMPT + ANSWER, beta=0.1)
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         callbacks=[timer.callback()])
    return {**measure(trainer, timer), "gradient_checkpointing": True}


def tune_wizard(path: Path, tok, steps: int, tmp: str, ckpt_mode: str) -> dict:
    from wizard.engine import loader
    from wizard.engine.dpo import build_trainer
    from wizard.engine.training_args import build_args, choose_gradient_checkpointing
    from wizard.spec import from_dict

    spec = from_dict({"model": {"id": str(path), "hub": "local"}, "task": "dpo", "method": "qlora",
                      "lora": {"r": 8, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
                      "data": {"train": "unused.jsonl", "max_length": PROMPT + ANSWER},
                      "dpo": {"beta": 0.1, "max_prompt_length": PROMPT, "max_completion_length": ANSWER},
                      "train": {"batch_size": 1, "grad_accum": 1, "max_steps": steps, "lr": 5e-5,
                                "scheduler": "constant", "save_steps": 10**6, "logging_steps": steps,
                                "gradient_checkpointing": ckpt_mode}})
    precision = loader.choose_precision("auto", "qlora")
    try:
        ckpt, why = choose_gradient_checkpointing(spec, path)
    except Exception as exc:  # the estimate must not stop the measurement
        ckpt, why = ckpt_mode == "on", f"estimate failed ({type(exc).__name__}: {exc}); off"
    model, _ = loader.build_model(spec, path, precision, ckpt)
    args = build_args(spec, Path(tmp), precision, ckpt, has_eval=False)
    timer = Timer(warmup=WARMUP)
    trainer = build_trainer(spec, model, tok, pairs(steps), [], args, [timer.callback()],
                            lambda text, level="info": print(f"  [{level}] {text}", flush=True))
    return {**measure(trainer, timer), "gradient_checkpointing": ckpt, "why": why}


def smoke_checkpoint(path: Path) -> Path:
    """A 2-layer model of the same family, on the CPU, for --smoke."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if not (path / "config.json").is_file():
        Qwen2ForCausalLM(Qwen2Config(**SHAPE)).save_pretrained(path)
    return path


def main():
    global PROMPT, ANSWER
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cache", default="/tmp/qwen2.5-7b-random")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--cases", default="trl_recipe,tune_wizard_ckpt_on,tune_wizard_auto")
    ap.add_argument("--smoke", action="store_true", help="tiny shape, any device, results under /tmp")
    a = ap.parse_args()
    t0 = time.time()
    if a.smoke:
        PROMPT, ANSWER = 24, 16
        SHAPE.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2)
        a.cache, a.out, a.steps = "/tmp/qwen2-smoke-random", "/tmp/bench-dpo-smoke", min(a.steps, 5)
        if not torch.cuda.is_available():
            torch.cuda.synchronize = lambda *args, **kw: None  # the shared Timer syncs unconditionally
        path = smoke_checkpoint(Path(a.cache))
    else:
        path = make_checkpoint(Path(a.cache))
    tok = ensure_tokenizer(path)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    versions = {}
    for m in ("torch", "transformers", "peft", "bitsandbytes", "trl", "datasets"):
        try:
            versions[m] = __import__(m).__version__
        except ImportError:
            versions[m] = None
    results = {"gpu": gpu, "model": ("smoke: 2-layer Qwen2 shape" if a.smoke else "Qwen2.5-7B shape") +
               ", random weights, 4-bit NF4 + double quant",
               "lora": "r=8 alpha=32 on q_proj,v_proj", "prompt_tokens": PROMPT, "answer_tokens": ANSWER,
               "pairs_per_step": 1, "steps": a.steps, "timed_steps": a.steps - WARMUP, "versions": versions}
    cases = {"trl_recipe": lambda: trl_recipe(path, tok, a.steps, "/tmp/bench-dpo-trl"),
             "tune_wizard_ckpt_on": lambda: tune_wizard(path, tok, a.steps, "/tmp/bench-dpo-tw", "on"),
             "tune_wizard_auto": lambda: tune_wizard(path, tok, a.steps, "/tmp/bench-dpo-tw2", "auto")}
    for name in a.cases.split(","):
        t = time.time()
        try:
            results[name] = cases[name]()
        except Exception as exc:  # record and go on: one failing case must not lose the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:800]}
        results[name]["wall_s"] = round(time.time() - t, 1)
        print(name, results[name], flush=True)
        gc.collect()
        torch.cuda.empty_cache()
    results["total_wall_s"] = round(time.time() - t0, 1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dpo_qlora_7b.json").write_text(json.dumps(results, indent=2))
    if os.environ.get("OUT") and not a.smoke:  # the GPU runner brings back what is written under $OUT
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        (Path(os.environ["OUT"]) / "dpo_qlora_7b.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
