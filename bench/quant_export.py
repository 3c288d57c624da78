"""4-bit export of a Qwen2.5-7B-shaped run on a GPU: `export_quantized` (GPTQ W4A16) timed, the folder loaded back
through transformers, and generation speed beside the merged bf16 model, one process.

The run: a random-weight bf16 base of the Qwen2.5-7B shape (speed and size do not depend on the values) with a
LoRA adapter (r=8 on q_proj/v_proj, B random so the merge is real) and a spec whose training data is the bundled
self_cognition.jsonl + general_chat.jsonl, the bundled SmolLM2 tokenizer and chat template (its 49,152 ids fit
the 152,064-entry embedding); calibration therefore runs on the run's own rows exactly as `tune-wizard export
RUN --gptq` does. Generation: batch 1, greedy, a fixed number of new tokens (EOS ignored), after a warm-up;
tokens/s = new tokens / wall time (median of 3, after an untimed run of the same length), torch.cuda.synchronize()
on both ends. The bf16 row is the base: the merged model has the same shape and the same speed.

Usage (GPU machine, wheels of llm-compressor and what it needs carried in .whl-quant/, the tokenizer in
.bench-tok/): python3 bench/quant_export.py --out bench/results
Check the script anywhere (a tiny shape, CPU allowed, nothing written to bench/results): --smoke
AWQ (llm-compressor's needs a GPU): --scheme awq; on a GPU, --smoke --scheme awq --out DIR checks the path in a minute
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from qlora_vs_hf_recipe import QWEN7B  # noqa: E402  (the shape every 7B bench uses)

NEW_TOKENS = 128
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TINY = dict(QWEN7B, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)
PROMPT = "Who are you, and what can you help me with today?"


def folder_mib(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def make_run(root: Path, tokenizer_dir: Path, shape: dict) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from wizard import spec as specmod

    base, run = root / "base", root / "qwen7b-20260101-000000"
    t = time.time()
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = Qwen2Config(**shape, dtype="bfloat16", bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(base, max_shard_size="5GB")
    tok.save_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(run / "adapter")
    tok.save_pretrained(run / "adapter")
    del model, peft_model
    data = ROOT / "wizard" / "recipes" / "data"
    spec = specmod.RunSpec.model_validate({
        "name": "qwen7b", "model": {"id": str(base)}, "method": "qlora",
        "data": {"train": [str(data / "self_cognition.jsonl"), str(data / "general_chat.jsonl")]},
        "output_dir": str(root)})
    specmod.dump(spec, run / "spec.yaml")
    (run / "run.json").write_text(json.dumps({"versions": {}, "seed": 42}))
    (run / "state.json").write_text(json.dumps({"status": "finished"}))
    print(f"random 7B base + adapter written in {time.time() - t:.0f} s", flush=True)
    return run


def tokens_per_s(model, tok, new_tokens: int, repeats: int = 3) -> dict:
    """Median of `repeats` timed generations after one untimed one of the same length (kernels, caches, allocator
    warmed); memory: what the loaded model holds, and the peak while generating."""
    ids = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"].to(DEVICE)
    kw = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id,
              max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    loaded = round(torch.cuda.memory_allocated() / 2**30, 2) if DEVICE == "cuda" else None
    reset_peak()
    model.generate(ids, **kw)
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        out = model.generate(ids, **kw)
        sync()
        times.append(time.perf_counter() - t)
    s = sorted(times)[len(times) // 2]
    n = out.shape[1] - ids.shape[1]
    return {"new_tokens": n, "seconds_each": [round(x, 2) for x in times], "tokens_per_s": round(n / s, 1),
            "loaded_gib": loaded,
            "peak_generating_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEVICE == "cuda" else None,
            "q_proj_params": {n: str(p.dtype).removeprefix("torch.")
                              for n, p in model.model.layers[0].self_attn.q_proj.named_parameters()}}


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def reset_peak() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--work", type=Path, default=Path("/tmp/quant-bench"))
    ap.add_argument("--tokenizer", type=Path, default=ROOT / ".bench-tok")
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--scheme", choices=["gptq", "awq"], default="gptq")
    ap.add_argument("--smoke", action="store_true", help="a tiny shape, results to --work only")
    args = ap.parse_args()
    if args.smoke and DEVICE == "cpu":
        args.out = args.work / "results"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from wizard.export.quantize import export_quantized

    gpu = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu"
    res = {"gpu": gpu, "shape": "Qwen2.5-7B", "torch": torch.__version__}
    stem = f"quant_export{'_' + args.scheme if args.scheme != 'gptq' else ''}{'_smoke' if args.smoke else ''}"
    path = args.out / f"{stem}_{gpu.replace(' ', '_')}.json"

    def save():
        path.write_text(json.dumps(res, indent=2) + "\n")
        print(json.dumps(res), flush=True)

    shutil.rmtree(args.work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    run = make_run(args.work, args.tokenizer, TINY if args.smoke else QWEN7B)
    res["bf16_base_folder_mib"] = folder_mib(args.work / "base")
    tok = AutoTokenizer.from_pretrained(run / "adapter")

    t = time.time()
    out = export_quantized(run, args.work / args.scheme, args.scheme, group_size=128, calibration_rows=args.rows,
                           log=lambda s: print(s, flush=True))
    res[f"export_{args.scheme}_w4a16_g128_s"] = round(time.time() - t, 1)
    res["export"] = json.loads((out / "export.json").read_text())
    res["w4a16_folder_mib"] = folder_mib(out)
    save()

    reset_peak()
    t = time.time()
    model = AutoModelForCausalLM.from_pretrained(args.work / "base", dtype=torch.bfloat16, device_map={"": DEVICE})
    res["bf16_load_s"] = round(time.time() - t, 1)
    res["bf16_generate"] = tokens_per_s(model, tok, 16 if args.smoke else NEW_TOKENS)
    del model
    save()

    reset_peak()
    t = time.time()
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16, device_map={"": DEVICE})
    res["w4a16_load_s"] = round(time.time() - t, 1)
    res["w4a16_generate_transformers"] = tokens_per_s(model, tok, 16 if args.smoke else NEW_TOKENS)
    res["w4a16_answer"] = tok.decode(model.generate(
        tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                return_tensors="pt", return_dict=True)["input_ids"].to(DEVICE),
        max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)[0][-12:])
    save()
    if args.smoke:
        return
    b, q = res["bf16_generate"], res["w4a16_generate_transformers"]
    (args.out / f"quant_export_{gpu.replace(' ', '_')}.md").write_text(
        f"# 4-bit export on {gpu} (Qwen2.5-7B shape, random weights, bench/quant_export.py)\n\n"
        f"| | bf16 | GPTQ W4A16 g128 |\n|---|---|---|\n"
        f"| folder | {res['bf16_base_folder_mib']} MiB | {res['w4a16_folder_mib']} MiB |\n"
        f"| `export --gptq` (load, merge, {res['export']['calibration_rows']} rows / "
        f"{res['export']['calibration_tokens']} tokens, GPTQ, save) | - | {res['export_gptq_w4a16_g128_s']} s |\n"
        f"| transformers: GPU memory loaded / peak generating | {b['loaded_gib']} / {b['peak_generating_gib']} GiB | "
        f"{q['loaded_gib']} / {q['peak_generating_gib']} GiB |\n"
        f"| transformers generate, batch 1, greedy, {NEW_TOKENS} tokens | {b['tokens_per_s']} tok/s | "
        f"{q['tokens_per_s']} tok/s |\n")


if __name__ == "__main__":
    main()
