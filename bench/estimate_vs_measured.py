"""The memory estimate against real peaks on one NVIDIA GPU.

    python bench/estimate_vs_measured.py            # ~4-6 minutes on an H100, no network
    python bench/estimate_vs_measured.py --shapes qwen2.5-0.5b-instruct --lengths 512

For Qwen2.5 0.5B / 1.5B / 7B shapes (catalog configs, random weights), LoRA (bf16 weights built on the
GPU) and QLoRA (the same random weights saved once to /tmp and loaded back 4-bit NF4 with double
quantization, as the engine loads a model), r=8 on q_proj/v_proj, dropout 0.05, one sequence of 512 or
2048 tokens, gradient checkpointing off and on: three AdamW steps the way the HF Trainer takes them
(forward under bf16 autocast, labels = input_ids, gradient clipping), then torch.cuda.max_memory_allocated
against the estimate's allocated part (everything but the CUDA context and allocator slack), and the
device's used memory against the estimate's total.

Writes bench/results/estimate_vs_measured.json and .md. Imports only wizard.estimate / wizard.catalog
from the project. Each case runs in its own try/except; a failed case is recorded, not fatal.
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wizard.estimate import AUTO_CKPT_HEADROOM, GIB, estimate, shape_for_model  # noqa: E402

SHAPES = ["qwen2.5-0.5b-instruct", "qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct"]
DEVICE = "cuda"  # --smoke-cpu runs the same code on the CPU to check the script itself (no memory figures)
TARGETS = ["q_proj", "v_proj"]
TARGET_ERROR = 0.15


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def qwen_config(shape):
    from transformers import Qwen2Config

    return Qwen2Config(hidden_size=shape.hidden, num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                       num_key_value_heads=shape.kv_heads, intermediate_size=shape.intermediate,
                       vocab_size=shape.vocab, tie_word_embeddings=shape.tied, max_position_embeddings=32768,
                       rope_theta=1000000.0, use_cache=False)


def free_cuda() -> None:
    import torch

    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def allocated() -> float:
    import torch

    return torch.cuda.memory_allocated() / GIB if DEVICE == "cuda" else 0.0


def build_lora_base(cfg):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device(DEVICE):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.config.use_cache = False
    return model


def load_qlora_base(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb, dtype=torch.bfloat16,
                                                 device_map={"": 0 if DEVICE == "cuda" else "cpu"},
                                                 attn_implementation="sdpa")
    model.config.use_cache = False
    return model


def set_checkpointing(model, on: bool) -> None:
    if on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()


def run_case(base, vocab: int, length: int, ckpt: bool, steps: int) -> tuple[dict, object]:
    """Three training steps of a fresh LoRA adapter on `base`; returns the measurements and the base
    model with the adapter removed again."""
    import torch
    from peft import LoraConfig, get_peft_model

    set_checkpointing(base, ckpt)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS,
                                            bias="none", task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    ids = torch.randint(0, vocab, (1, length), device=DEVICE)
    free_cuda()
    cuda = DEVICE == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    at_start = allocated()
    losses, t0 = [], time.perf_counter()
    for _ in range(steps):
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(loss.item(), 3))
        del loss
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / steps
    free, total = torch.cuda.mem_get_info() if cuda else (0, 0)
    out = {"allocated_gb": torch.cuda.max_memory_allocated() / GIB if cuda else 0.0,
           "reserved_gb": torch.cuda.max_memory_reserved() / GIB if cuda else 0.0,
           "device_used_gb": (total - free) / GIB, "at_start_gb": at_start,
           "s_per_step": round(seconds, 3), "tokens_per_s": round(length / seconds), "losses": losses}
    del opt, params, ids
    base = model.unload()
    del model
    free_cuda()
    return out, base


def flash_gqa_ok() -> str:
    """Whether SDPA's flash kernel takes grouped-query inputs here (else the estimate's no-L^2 rule fails)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if DEVICE != "cuda":
        return "not checked (CPU)"
    q = torch.randn(1, 14, 256, 64, device="cuda", dtype=torch.bfloat16)
    kv = torch.randn(1, 2, 256, 64, device="cuda", dtype=torch.bfloat16)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, kv, kv, is_causal=True, enable_gqa=True)
        return "yes"
    except Exception as exc:  # noqa: BLE001
        return f"no ({type(exc).__name__})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", nargs="+", default=SHAPES)
    ap.add_argument("--methods", nargs="+", default=["lora", "qlora"], choices=["lora", "qlora"])
    ap.add_argument("--lengths", nargs="+", type=int, default=[512, 2048])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--tmp", default="/tmp/tune-wizard-bench")
    ap.add_argument("--budget-s", type=float, default=480, help="skip cases that would start after this")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "estimate_vs_measured"))
    ap.add_argument("--smoke-cpu", action="store_true",
                    help="run the script's logic on the CPU (tiny shape, short length): no memory figures")
    args = ap.parse_args()

    import torch

    global DEVICE
    if args.smoke_cpu:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        log("no CUDA GPU: this benchmark measures GPU memory (--smoke-cpu checks the script on a CPU)")
        return 1
    import peft
    import transformers

    try:
        import bitsandbytes
        bnb_version = bitsandbytes.__version__
    except Exception as exc:  # noqa: BLE001
        bnb_version = f"unavailable ({type(exc).__name__})"
    t_start = time.time()
    free0, total0 = torch.cuda.mem_get_info() if DEVICE == "cuda" else (80 * GIB, 80 * GIB)
    env = {"gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU smoke run (no GPU figures)", "gpu_total_gb": round(total0 / GIB, 2),
           "gpu_free_at_start_gb": round(free0 / GIB, 2), "torch": torch.__version__,
           "transformers": transformers.__version__, "peft": peft.__version__, "bitsandbytes": bnb_version,
           "cuda": torch.version.cuda, "flash_sdpa_takes_gqa": flash_gqa_ok(),
           "cudnn_sdpa_enabled": bool(torch.backends.cuda.cudnn_sdp_enabled()),
           "compared": "estimate.allocated_gb vs torch.cuda.max_memory_allocated (after reset_peak_memory_stats); "
                       "estimate.total_gb vs the device's used memory (mem_get_info) after the steps",
           "units": "GiB (2**30 bytes)"}
    log(f"{env['gpu']}, {env['gpu_total_gb']} GiB; torch {env['torch']}, transformers {env['transformers']}, "
        f"peft {env['peft']}, bitsandbytes {bnb_version}; flash SDPA with GQA: {env['flash_sdpa_takes_gqa']}")
    results = []
    tmp = Path(args.tmp)
    for alias in args.shapes:
        shape = shape_for_model(alias)
        cfg = qwen_config(shape)
        ckpt_dir = tmp / alias
        for method in args.methods:
            if time.time() - t_start > args.budget_s:
                log(f"time budget spent: skipping {alias} {method}")
                results.append({"shape": alias, "method": method, "error": "skipped: time budget"})
                continue
            def make_base(method=method, cfg=cfg, ckpt_dir=ckpt_dir, alias=alias):
                free_cuda()
                leftover, t0 = allocated(), time.time()
                if method == "lora":
                    model = build_lora_base(cfg)
                    if "qlora" in args.methods and not (ckpt_dir / "config.json").is_file():
                        ckpt_dir.mkdir(parents=True, exist_ok=True)
                        model.save_pretrained(ckpt_dir)
                        log(f"{alias}: random bf16 checkpoint saved to {ckpt_dir}")
                else:
                    if not (ckpt_dir / "config.json").is_file():
                        ckpt_dir.mkdir(parents=True, exist_ok=True)
                        src = build_lora_base(cfg)
                        src.save_pretrained(ckpt_dir)
                        del src
                        free_cuda()
                    model = load_qlora_base(ckpt_dir)
                log(f"{alias} {method}: model ready in {time.time() - t0:.0f} s "
                    f"({allocated():.2f} GiB; {leftover:.2f} GiB left over before)")
                return model

            try:
                base = make_base()
            except Exception as exc:  # noqa: BLE001
                log(f"{alias} {method}: could not build the model: {type(exc).__name__}: {exc}")
                traceback.print_exc()
                results.append({"shape": alias, "method": method, "error": f"build: {type(exc).__name__}: {exc}"[:300]})
                free_cuda()
                continue
            # Checkpointing off first: enabling it hooks the embeddings, and disabling does not unhook them.
            for ckpt in (False, True):
                for length in args.lengths:
                    b = estimate(shape, method=method, precision="bf16", lora_r=8, target_modules=TARGETS,
                                 max_length=length, batch_size=1, grad_ckpt=ckpt, optimizer="adamw_torch",
                                 lora_dropout=0.05, device="cuda")
                    without = estimate(shape, method=method, precision="bf16", lora_r=8, target_modules=TARGETS,
                                       max_length=length, grad_ckpt=False, device="cuda")
                    default_ckpt = without.total_gb > AUTO_CKPT_HEADROOM * free0 / GIB
                    row = {"shape": alias, "params_b": round(shape.params_b, 3), "method": method, "max_length": length,
                           "grad_ckpt": ckpt, "engine_default": ckpt == default_ckpt,
                           "estimate_allocated_gb": round(b.allocated_gb, 3), "estimate_total_gb": round(b.total_gb, 3),
                           "estimate_parts": {k: round(v, 3) for k, v in b.parts.items()}, "estimate_peak": b.peak}
                    if time.time() - t_start > args.budget_s:
                        row["error"] = "skipped: time budget"
                        results.append(row)
                        continue
                    try:
                        if base is None:  # the previous case failed with the adapter attached: start clean
                            base = make_base()
                            set_checkpointing(base, ckpt)
                        m, base = run_case(base, shape.vocab, length, ckpt, args.steps)
                        row.update({k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items()})
                        if m["allocated_gb"] > 0:  # zero on a --smoke-cpu run
                            row["error_pct"] = round(100 * (b.allocated_gb - m["allocated_gb"]) / m["allocated_gb"], 1)
                            row["total_error_pct"] = round(100 * (b.total_gb - m["device_used_gb"]) / m["device_used_gb"], 1)
                        log(f"{alias} {method} L={length} ckpt={'on' if ckpt else 'off'}: measured "
                            f"{m['allocated_gb']:.2f} GiB (reserved {m['reserved_gb']:.2f}, device {m['device_used_gb']:.2f}), "
                            f"estimate {b.allocated_gb:.2f} ({row.get('error_pct', '-')}%); {m['s_per_step']} s/step")
                    except Exception as exc:  # noqa: BLE001 - OOM or a library error: record it, go on
                        log(f"{alias} {method} L={length} ckpt={ckpt}: {type(exc).__name__}: {str(exc)[:200]}")
                        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                        base = None  # the adapter may still be attached: rebuild rather than measure garbage
                        gc.collect()
                        free_cuda()
                    results.append(row)
            del base
            free_cuda()
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    env["seconds"] = round(time.time() - t_start)
    write(results, env, Path(args.out))
    return 0


def write(results: list[dict], env: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    measured = [r for r in results if "error_pct" in r]
    attempted = [r for r in results if "allocated_gb" in r or "error" in r]
    worst = max((abs(r["error_pct"]) for r in measured), default=None)
    env["worst_error_pct"] = worst
    env["within_target"] = worst is not None and worst <= 100 * TARGET_ERROR and len(measured) == len(attempted)
    out.with_suffix(".json").write_text(json.dumps({"env": env, "cases": results}, indent=2) + "\n")
    lines = [f"# Memory estimate vs measured peak — {env['gpu']}", "",
             f"torch {env['torch']}, transformers {env['transformers']}, peft {env['peft']}, bitsandbytes "
             f"{env['bitsandbytes']}, CUDA {env['cuda']}; flash SDPA with GQA: {env['flash_sdpa_takes_gqa']}. "
             f"{env['seconds']} s.", "",
             "Random-weight Qwen2.5-shaped models, LoRA r=8 on q_proj/v_proj (dropout 0.05), batch 1, three AdamW "
             "steps under bf16 autocast. *measured* = `torch.cuda.max_memory_allocated()`; *estimate* = the "
             "estimate's allocated part (total less the CUDA context and allocator slack). *device* = memory the "
             "GPU reports used after the steps, against the estimate's total. GiB. *default*: the engine's "
             "`gradient_checkpointing: auto` would pick this setting on this GPU.", "",
             "| shape | method | len | ckpt | default | estimate | measured | error % | reserved | est. total | device | total err % | s/step |",
             "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error_pct" not in r and "allocated_gb" in r:
            r = {**r, "error_pct": 0.0, "total_error_pct": 0.0}   # smoke run: the row, without figures
        if "error_pct" not in r:
            lines.append(f"| {r['shape']} | {r['method']} | {r.get('max_length', '')} | "
                         f"{'on' if r.get('grad_ckpt') else 'off' if 'grad_ckpt' in r else ''} | | "
                         f"{r.get('estimate_allocated_gb', '')} | – | {r.get('error', '')} | | | | | |")
            continue
        lines.append(f"| {r['shape']} | {r['method']} | {r['max_length']} | {'on' if r['grad_ckpt'] else 'off'} | "
                     f"{'yes' if r['engine_default'] else ''} | {r['estimate_allocated_gb']:.2f} | {r['allocated_gb']:.2f} | "
                     f"{r['error_pct']:+.1f} | {r['reserved_gb']:.2f} | {r['estimate_total_gb']:.2f} | "
                     f"{r['device_used_gb']:.2f} | {r['total_error_pct']:+.1f} | {r['s_per_step']} |")
    verdict = ("within" if env["within_target"] else "NOT within") + f" {int(100 * TARGET_ERROR)}% everywhere"
    lines += ["", f"Worst error: {worst}% ({verdict})." if worst is not None else "No case measured.", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}: worst error {worst}%")


if __name__ == "__main__":
    sys.exit(main())
