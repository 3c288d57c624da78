"""Real SFT data on one GPU: the common HF recipe beside tune-wizard's default path, in one process.

Rows with a realistic length distribution: log-normal, median 269, mean ~339 tokens, capped at 2048 (seeded;
the shape of alpaca-style instruction data), and the bundled demo data's own lengths
(bench/bundled_row_lengths.json: its 401 rows through the bundled model's tokenizer, mean 70 tokens).
Each row is a user turn (40% of its tokens) and an assistant answer; the loss is on the answer.

Model: Qwen2.5-7B shape with random bf16 weights (speed and memory do not depend on the values), saved once in
--cache and loaded 4-bit NF4 + double quantization, bf16 compute, LoRA r=8 on q_proj/v_proj, AdamW. A
byte-level tokenizer without merges (one token per letter) makes every text row tune-wizard reads exactly
as long as the lengths above; the output head still spans the model's 152,064 ids.

  hf_recipe     the init script's defaults: batch 1 x grad-accum 16, rows padded per batch,
                prepare_model_for_kbit_training + gradient checkpointing + peft, the HF Trainer
  tw_24gb       `tune-wizard run` (wizard.engine.runner.train, the whole engine: batching plan, attention,
                chunked loss, dashboard reporter and NVML sampler) on the spec `init --defaults` writes for
                qwen2.5-7b-instruct on a 24 GB GPU (its method from wizard.estimate.recommend for 24 GiB, batching
                tokens, every `auto` left to the run), run with --gpu-memory 24: the plan is fitted to 24 GiB
                and torch's allocator is capped there (torch.cuda.set_per_process_memory_fraction), so a peak
                over 24 GiB would be an out-of-memory error, not a number in this table
  tw_free       the same spec on the whole GPU
  tw_8gb        the memory mode: method qlora, rows up to 2,048 tokens, --gpu-memory 8
  tw_free_bundled / hf_recipe_bundled   the bundled data's lengths

Real tokens/s counts non-padding tokens over the timed optimizer steps, after --warmup steps (long enough that
new shapes stop appearing: the HF recipe's per-row shapes settle after ~100 rows). tune-wizard's figure is the
one its own dashboard shows (metrics.jsonl), over the same steps. Peak memory: torch.cuda.max_memory_reserved()
(what the 24 GiB cap holds) and max_memory_allocated().

    source bench/gpu_env.sh && python3 bench/token_batching.py [--cases ...] [--out bench/results]
    python3 bench/token_batching.py --write-bundled-lengths   (where the bundled model is installed)
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from packed_attention import row_lengths  # noqa: E402  (the seeded log-normal lengths)
from qlora_vs_hf_recipe import make_checkpoint  # noqa: E402  (the shared random 7B checkpoint)

BUNDLED = HERE / "bundled_row_lengths.json"
PROMPT_SHARE = 0.4


def write_bundled_lengths() -> None:
    from wizard.data.load import load_examples
    from wizard.data.render import tokenize_sft
    from wizard.model_source import load_tokenizer, resolve
    from wizard.spec import load

    spec = load("demo")
    train, _, _ = load_examples(spec.data, task="sft", seed=42)
    tok = load_tokenizer(resolve(spec.model.id, spec.model.hub, None), False)
    rows, _ = tokenize_sft(train, tok, max_length=spec.data.max_length)
    BUNDLED.write_text(json.dumps([len(r["input_ids"]) for r in rows]) + "\n")
    print(f"{len(rows)} rows, mean {sum(len(r['input_ids']) for r in rows) / len(rows):.1f} tokens -> {BUNDLED}")


def split(n: int) -> tuple[int, int]:
    """(prompt words, answer words) of a row of n tokens: the end-of-turn token is the last one."""
    prompt = max(1, round(PROMPT_SHARE * n))
    return prompt, max(1, n - prompt - 1)


# The chat template adds a space after each turn and the end-of-turn token after the answer.
TEMPLATE = ("{% for m in messages %}{{ m['content'] }}{% if m['role'] == 'assistant' %}{{ ' ' + eos_token }}"
            "{% endif %}{{ ' ' }}{% endfor %}")
TEMPLATE_TOKENS = 4


def with_byte_tokenizer(weights: Path, folder: Path) -> Path:
    """The checkpoint (linked, not copied) with a byte-level BPE tokenizer that has no merges: one token per
    character of ASCII text, so a row of n letters is n tokens. (A word-level tokenizer would be exact too, but
    AutoTokenizer loads a qwen2 model's tokenizer as Qwen2's BPE class, which reads only BPE files.)"""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    for f in weights.iterdir():
        if f.suffix in (".json", ".safetensors") and not f.name.startswith("tokenizer") and not (folder / f.name).exists():
            (folder / f.name).symlink_to(f)
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.chat_template = TEMPLATE
    tok.save_pretrained(folder)
    return folder


def write_dataset(path: Path, lengths: list[int], seed: int) -> Path:
    rng = random.Random(seed)
    letters = lambda k: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(k))  # noqa: E731
    with path.open("w", encoding="utf-8") as f:
        for n in lengths:
            p, a = split(n - TEMPLATE_TOKENS + 1)
            f.write(json.dumps({"messages": [{"role": "user", "content": letters(p)},
                                             {"role": "assistant", "content": letters(a)}]}) + "\n")
    return path


def default_spec(model_path: Path, data: Path, gpu_gb: float, steps: int, method: str | None = None) -> dict:
    """What `tune-wizard init --defaults` writes for qwen2.5-7b-instruct on a GPU of gpu_gb (wizard.init's
    Context.settings_for: recommend()'s method and max_length, batching tokens with every `auto` left to the
    run), pointed at the local random checkpoint and the bench data, with a step limit and no checkpoints."""
    from wizard.estimate import recommend, shape_for_model
    from wizard.hardware import GpuInfo, Hardware

    gpu = GpuInfo(index=0, name="simulated", total_gb=gpu_gb, free_gb=gpu_gb, bf16=True, compute_capability=(9, 0))
    hw = Hardware(gpus=[gpu], cpu_count=16, ram_total_gb=128, ram_available_gb=120, cpu_bf16=True,
                  cuda_available=True)
    rec = recommend(shape_for_model("qwen2.5-7b-instruct"), hw, "sft", method=method)
    return {"name": f"bench-{gpu_gb:g}gb", "model": {"id": str(model_path), "hub": "local"}, "task": "sft",
            "method": rec["method"], "lora": {"r": 8, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
            "data": {"train": [str(data)], "max_length": rec["max_length"]},
            "train": {"lr": rec["lr"], "max_steps": steps, "logging_steps": 1, "save_steps": 10**6,
                      "warmup_ratio": 0.0, "scheduler": "constant"},
            "output_dir": "/tmp/bench-token-runs"}


def train_profiled(spec, profile: Path | None, warmup: int) -> Path:
    """wizard.engine.runner.train, phase by phase, with torch.profiler over 3 steps after the warm-up when
    `profile` names the file for its summary."""

    from wizard.engine import runner
    from wizard.engine.lifecycle import RunLifecycle

    p = runner.prepare(spec, None)
    with RunLifecycle(p.run_dir, {"name": spec.name, "model": spec.model.id, "task": spec.task,
                                  "method": spec.method}) as run:
        loaded = runner.load(spec, p, run)
        trainer = runner.build(spec, p, loaded, run)
        if profile is not None:
            trainer.add_callback(profiler_callback(profile, warmup + 1, 3))
        runner.fit(trainer, p)
        runner.finalize(spec, p, loaded, trainer, run)
    return p.run_dir


def profiler_callback(path: Path, first: int, n: int):
    """A Trainer callback: torch.profiler over steps [first, first + n), written to PATH as the top kernels and
    host calls and how much of the wall time the GPU was busy."""
    from transformers import TrainerCallback

    class CB(TrainerCallback):
        prof, t0 = None, 0.0

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step + 1 == first:
                torch.cuda.synchronize()
                self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                               torch.profiler.ProfilerActivity.CUDA])
                self.prof.__enter__()
                self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if self.prof is not None and state.global_step == first + n - 1:
                torch.cuda.synchronize()
                wall = time.perf_counter() - self.t0
                self.prof.__exit__(None, None, None)
                events = self.prof.key_averages()
                # Kernels only: an operator's row repeats the time of the kernels it launched.
                gpu_us = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
                head = (f"torch.profiler over steps {first}..{first + n - 1} ({n} optimizer steps), wall "
                        f"{wall:.3f} s, GPU kernels {gpu_us / 1e6:.3f} s: the GPU busy "
                        f"{100 * gpu_us / 1e6 / wall:.0f}% of the wall time\n\n")
                path.write_text(head + "by GPU time:\n" + events.table(sort_by="self_device_time_total",
                                                                      row_limit=25)
                                + "\n\nby host time:\n" + events.table(sort_by="self_cpu_time_total",
                                                                       row_limit=25))
                self.prof = None
    return CB()


def memory_mode(spec: dict) -> dict:
    """The memory mode: QLoRA on rows of up to 2,048 tokens (recommend() would cut them to 256 on 8 GiB), the
    rest `auto` under --gpu-memory 8."""
    spec["data"]["max_length"] = 2048
    return spec


def tune_wizard(spec_dict: dict, cap_gb: float | None, warmup: int, profile: Path | None = None) -> dict:
    from wizard import run_folder as rf
    from wizard.hardware import GPU_MEMORY_ENV
    from wizard.spec import from_dict

    if cap_gb:
        os.environ[GPU_MEMORY_ENV] = str(cap_gb)
    else:
        os.environ.pop(GPU_MEMORY_ENV, None)
    torch.cuda.reset_peak_memory_stats()
    try:
        run_dir = train_profiled(from_dict(spec_dict), profile, warmup)
    finally:
        os.environ.pop(GPU_MEMORY_ENV, None)
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
    rows = [r for r in rf.read_jsonl(run_dir / rf.METRICS) if r.get("tokens_per_s") is not None]
    # Each row: the real tokens/s since the row before; weight by the time between rows.
    timed = [(r, r["time"] - prev["time"]) for prev, r in zip(rows, rows[1:]) if r["step"] > warmup]
    seconds = sum(dt for _, dt in timed)
    tokens = sum(r["tokens_per_s"] * dt for r, dt in timed)
    about = rf.read_json(run_dir / rf.RUN_INFO) or {}
    return {"method": spec_dict["method"], "batching": about.get("batching"), "attention": about.get("attention"),
            "steps_timed": len(timed), "warmup_steps": warmup, "s_per_step": round(seconds / max(len(timed), 1), 4),
            "real_tokens_per_s": round(tokens / seconds) if seconds else None,
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
            "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "events": [line for line in (run_dir / rf.LOG).read_text().splitlines()
                       if "batching" in line or "checkpointing" in line or "GPU memory" in line][:4]}


class Counting:
    """The HF recipe's collator (pad each batch to its longest row), recording each batch's real tokens."""

    def __init__(self, pad_id: int):
        self.pad_id, self.counts = pad_id, []

    def __call__(self, rows):
        width = max(len(r["input_ids"]) for r in rows)
        ids = [r["input_ids"] + [self.pad_id] * (width - len(r["input_ids"])) for r in rows]
        labels = [r["labels"] + [-100] * (width - len(r["labels"])) for r in rows]
        mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
        self.counts.append(sum(len(r["input_ids"]) for r in rows))
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def hf_recipe(path: Path, lengths: list[int], vocab: int, warmup: int, steps: int) -> dict:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Trainer, TrainerCallback, TrainingArguments

    accum = 16
    g = torch.Generator().manual_seed(0)
    rows = []
    for n in lengths[: (warmup + steps) * accum]:
        ids = torch.randint(0, vocab - 2, (n,), generator=g).tolist()
        p, _ = split(n)
        rows.append({"input_ids": ids, "labels": [-100] * p + ids[p:]})
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb, dtype=torch.bfloat16,
                                                 device_map={"": 0})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    collate = Counting(pad_id=vocab - 1)
    marks: list[tuple[int, float]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            marks.append((state.global_step, time.perf_counter()))

    args = TrainingArguments(output_dir="/tmp/bench-hf-token", max_steps=warmup + steps, per_device_train_batch_size=1,
                             gradient_accumulation_steps=accum, learning_rate=2e-4, optim="adamw_torch", bf16=True,
                             gradient_checkpointing=True, logging_steps=10**6, save_strategy="no", report_to="none",
                             disable_tqdm=True, remove_unused_columns=False, lr_scheduler_type="constant")
    torch.cuda.reset_peak_memory_stats()
    Trainer(model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[Clock()]).train()
    (s0, t0), (s1, t1) = marks[warmup - 1], marks[-1]
    tokens = sum(collate.counts[s0 * accum:s1 * accum])
    out = {"batch": "1 x grad-accum 16, padded", "steps_timed": s1 - s0, "warmup_steps": warmup,
           "micro_batches_timed": (s1 - s0) * accum, "s_per_step": round((t1 - t0) / (s1 - s0), 4),
           "real_tokens_per_s": round(tokens / (t1 - t0)),
           "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
           "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    del model
    return out


def attention_check() -> dict:
    """The GPU paths agree: a 2-layer Qwen2 (bf16) on rows end to end, varlen attention + the chunked loss vs
    sdpa with the mask from position_ids + the model's own loss: the loss and the LoRA gradients."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    from wizard.data.packing import DataCollator, token_batches
    from wizard.engine import attention, chunked_loss

    attention.register()
    cfg = Qwen2Config(hidden_size=512, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=8,
                      num_key_value_heads=2, vocab_size=32000, use_cache=False)
    g = torch.Generator().manual_seed(0)
    rows = []
    for n in row_lengths(40, seed=3):
        ids = torch.randint(0, 32000, (n,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * split(n)[0] + ids[split(n)[0]:]})
    batch = DataCollator(0, pad_to_multiple_of=64, boundaries=True)(token_batches(rows, 16384, seed=0)[:1])
    batch.pop("num_real_tokens")
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
    out = {}
    for impl in ("sdpa", attention.VARLEN):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=impl).cuda()
        model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels" and (impl == attention.VARLEN or "cu_seq" not in k
                                                                        and "max_length" not in k)}
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = (chunked_loss.causal_lm_loss(model, inputs, labels) if impl == attention.VARLEN
                    else model(**inputs, labels=labels).loss)
        loss.backward()
        grads = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
        out[impl] = (float(loss), grads)
    (l0, g0), (l1, g1) = out["sdpa"], out[attention.VARLEN]
    return {"tokens": int(batch["input_ids"].shape[1]), "rows": len(batch["cu_seq_lens_q"]) - 1,
            "loss_sdpa_own": round(l0, 5), "loss_varlen_chunked": round(l1, 5),
            "grad_rel_diff": round(float((g0 - g1).norm() / g0.norm()), 5)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="attention_check,tw_24gb,hf_recipe,tw_free,tw_8gb,tw_free_bundled,hf_recipe_bundled")
    ap.add_argument("--cache", default="/tmp/qwen2.5-7b-random")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--rows", type=int, default=6000, help="rows of the log-normal dataset")
    ap.add_argument("--write-bundled-lengths", action="store_true")
    a = ap.parse_args()
    if a.write_bundled_lengths:
        write_bundled_lengths()
        return
    t_start = time.time()
    weights = make_checkpoint(Path(a.cache))
    path = with_byte_tokenizer(weights, Path(a.cache + "-bytes"))
    vocab = json.loads((path / "config.json").read_text())["vocab_size"]
    lognormal = row_lengths(a.rows, seed=0)
    bundled = json.loads(BUNDLED.read_text())
    bundled = (bundled * (1 + 3000 // len(bundled)))[:3000]  # the 401 rows, repeated: enough steps to time
    random.Random(0).shuffle(bundled)
    data = {"lognormal": write_dataset(Path("/tmp/bench-lognormal.jsonl"), lognormal, 1),
            "bundled": write_dataset(Path("/tmp/bench-bundled.jsonl"), bundled, 2)}
    gpu = torch.cuda.get_device_name(0)
    versions = {m: getattr(__import__(m), "__version__", None) for m in ("torch", "transformers", "peft", "bitsandbytes")}
    results: dict = {"gpu": gpu, "versions": versions, "model": "Qwen2.5-7B shape, random weights",
                     "rows": {"lognormal": {"n": len(lognormal), "mean": round(sum(lognormal) / len(lognormal), 1),
                                            "median": sorted(lognormal)[len(lognormal) // 2]},
                              "bundled": {"n": len(json.loads(BUNDLED.read_text())),
                                          "mean": round(sum(bundled) / len(bundled), 1)}},
                     "cases": {}}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"token_batching_{gpu.replace(' ', '_')}.json"
    if target.is_file():  # cases measured by an earlier call are kept
        results["cases"] = json.loads(target.read_text()).get("cases", {})
    cases = {
        "attention_check": attention_check,
        "tw_24gb": lambda: tune_wizard(default_spec(path, data["lognormal"], 24, 26), 24, 6),
        "tw_free": lambda: tune_wizard(default_spec(path, data["lognormal"], 24, 26), None, 6),
        "tw_8gb": lambda: tune_wizard(memory_mode(default_spec(path, data["lognormal"], 8, 13, method="qlora")), 8, 3),
        "hf_recipe": lambda: hf_recipe(path, lognormal, vocab, 6, 8),
        "tw_free_bundled": lambda: tune_wizard(default_spec(path, data["bundled"], 24, 26), None, 6,
                                               profile=out / f"profile_short_rows_{gpu.replace(' ', '_')}.txt"),
        "hf_recipe_bundled": lambda: hf_recipe(path, bundled, vocab, 4, 6),
    }
    for name in a.cases.split(","):
        t = time.time()
        try:
            results["cases"][name] = cases[name]()
        except Exception as exc:  # record and go on: one failing case must not lose the others
            import traceback

            traceback.print_exc()
            results["cases"][name] = {"error": f"{type(exc).__name__}: {exc}"[:800]}
        results["cases"][name]["wall_s"] = round(time.time() - t, 1)
        print(name, json.dumps(results["cases"][name]), flush=True)
        gc.collect()
        torch.cuda.empty_cache()
        target.write_text(json.dumps(results, indent=2))  # after every case: a timeout keeps what was measured
    results["total_wall_s"] = round(time.time() - t_start, 1)
    target.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
