"""Attention for packed rows: which kernel keeps a step full of real tokens fast.

Rows concatenated without padding (position_ids restart per row, no row attends to another) need an
attention that knows the row boundaries. Measured here, in one process on the same model and the same rows:

  one-row      one row per step, sdpa (the batch-1 path: short steps, mostly fixed overhead)
  sdpa         packed to a token budget; transformers builds a dense block-diagonal mask from position_ids
  flex         packed; flex_attention with a block-sparse mask (compiled)
  varlen       packed; torch's own varlen flash attention (torch.nn.attention.varlen.varlen_attn), registered
               with transformers' AttentionInterface; row boundaries passed as cu_seq_lens (no mask at all)

Model: Qwen2.5-7B shape with random bf16 weights built on the GPU, LoRA r=8 on q/v (peft), AdamW on the
adapter, no gradient checkpointing. The 4-bit weights of QLoRA do not change the attention's cost, and
bitsandbytes is not on the GPU machine, so the base stays bf16 here. Rows: a log-normal length distribution
(median 269, mean ~339 tokens, capped at 2048), the shape of alpaca-style instruction data.

    python3 bench/packed_attention.py [--budget 8192] [--warmup 8] [--steps 20] [--out bench/results]

Reports real (non-padding) tokens/s over the timed steps, peak allocated memory, and the first batch's
loss per path (the packed paths must agree: same rows, same weights).
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import random
import time
from pathlib import Path

import torch

QWEN25_7B = dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768,
                 rope_theta=1e6, tie_word_embeddings=False, rms_norm_eps=1e-6)


def row_lengths(n: int, seed: int, median: int = 269, mean: float = 339.0, cap: int = 2048) -> list[int]:
    sigma = math.sqrt(2 * math.log(mean / median))
    rng = random.Random(seed)
    return [max(16, min(cap, int(rng.lognormvariate(math.log(median), sigma)))) for _ in range(n)]


def pack(lengths: list[int], budget: int) -> list[list[int]]:
    """Whole rows in order, a new micro-batch when the next row would overflow the budget."""
    out, cur, used = [], [], 0
    for n in lengths:
        if cur and used + n > budget:
            out.append(cur)
            cur, used = [], 0
        cur.append(n)
        used += n
    if cur:
        out.append(cur)
    return out


def make_batch(rows: list[int], budget: int | None, vocab: int, gen: torch.Generator, device) -> dict:
    """input_ids, position_ids, labels (the first token of each row unlabelled, so no row predicts the next
    row's start) and cu_seq_lens; padded to `budget` with one extra unlabelled row, so shapes stay fixed."""
    real = sum(rows)
    pieces = list(rows) + ([budget - real] if budget and budget > real else [])
    total = sum(pieces)
    ids = torch.randint(0, vocab, (1, total), generator=gen)
    pos = torch.cat([torch.arange(n) for n in pieces]).unsqueeze(0)
    labels = ids.clone()
    start = 0
    for i, n in enumerate(pieces):
        labels[0, start] = -100
        if i >= len(rows):  # the padding row
            labels[0, start:start + n] = -100
        start += n
    cu = torch.tensor([0, *torch.tensor(pieces).cumsum(0).tolist()], dtype=torch.int32)
    return {"input_ids": ids.to(device), "position_ids": pos.to(device), "labels": labels.to(device),
            "cu": cu.to(device), "max_len": max(pieces), "real_tokens": real}


def register_varlen() -> str:
    """Torch's varlen flash attention as a transformers attention implementation named 'tw_varlen'."""
    from torch.nn.attention.varlen import varlen_attn
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    params = inspect.signature(varlen_attn).parameters

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                  cu_seq_lens_q=None, cu_seq_lens_k=None, max_length_q=None, max_length_k=None, **_):
        # transformers hands (batch=1, heads, tokens, dim); varlen wants (tokens, heads, dim)
        q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
        kw = {"scale": scaling}
        if "enable_gqa" in params:
            kw["enable_gqa"] = k.shape[1] != q.shape[1]
        elif k.shape[1] != q.shape[1]:
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if "is_causal" in params:
            kw["is_causal"] = True
        else:
            kw["window_size"] = (-1, 0)
        out = varlen_attn(q, k, v, cu_seq_lens_q, cu_seq_lens_k, max_length_q, max_length_k, **kw)
        return out.unsqueeze(0), None

    AttentionInterface.register("tw_varlen", attention)
    AttentionMaskInterface.register("tw_varlen", flash_attention_mask)
    return str(inspect.signature(varlen_attn))


def build_model(device):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**QWEN25_7B)
    cfg.use_cache = False
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return model


def set_attention(model, name: str) -> None:
    base = model.get_base_model()
    if hasattr(base, "set_attn_implementation"):
        base.set_attn_implementation(name)
    else:
        base.config._attn_implementation = name


def step(model, opt, batch, varlen: bool) -> float:
    kw = {}
    if varlen:
        kw = dict(cu_seq_lens_q=batch["cu"], cu_seq_lens_k=batch["cu"], max_length_q=batch["max_len"],
                  max_length_k=batch["max_len"])
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"], **kw)
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(out.loss.detach())


def run_case(model, opt, name, attn, batches, warmup, steps, varlen=False) -> dict:
    set_attention(model, attn)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    # The first batch's loss before any update of this case: the same rows give the same loss on every path.
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        b = batches[0]
        kw = dict(cu_seq_lens_q=b["cu"], cu_seq_lens_k=b["cu"], max_length_q=b["max_len"],
                  max_length_k=b["max_len"]) if varlen else {}
        first_loss = float(model(input_ids=b["input_ids"], position_ids=b["position_ids"], labels=b["labels"],
                                 **kw).loss)
    state = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    t_warm = time.perf_counter()
    for b in batches[:warmup]:
        step(model, opt, b, varlen)
    torch.cuda.synchronize()
    warm_s = time.perf_counter() - t_warm
    timed = batches[warmup:warmup + steps]
    t0 = time.perf_counter()
    for b in timed:
        step(model, opt, b, varlen)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    real = sum(b["real_tokens"] for b in timed)
    padded = sum(b["input_ids"].shape[1] for b in timed)
    with torch.no_grad():  # every case starts from the same adapter
        for k, v in model.named_parameters():
            if k in state:
                v.copy_(state[k])
    opt.state.clear()
    row = {"case": name, "attention": attn, "steps_timed": len(timed), "warmup_steps": warmup,
           "warmup_s": round(warm_s, 1), "s_per_step": round(dt / len(timed), 4),
           "real_tokens_per_s": round(real / dt), "real_share": round(real / padded, 3),
           "peak_alloc_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "first_batch_loss": round(first_loss, 5)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=8192, help="tokens per packed micro-batch")
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cases", default="one-row,sdpa,flex,varlen")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    device = torch.device("cuda")
    gpu = torch.cuda.get_device_name(0)
    import transformers

    env = {"gpu": gpu, "torch": torch.__version__, "transformers": transformers.__version__}
    try:
        env["varlen_signature"] = register_varlen()
    except Exception as exc:  # an older torch: the other paths still run
        env["varlen_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(env), flush=True)
    model = build_model(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    n_packed = args.warmup + args.steps
    lengths = row_lengths(40 * n_packed, seed=0)
    packed = pack(lengths, args.budget)[:n_packed]
    gen = torch.Generator().manual_seed(0)
    packed_batches = [make_batch(rows, args.budget, QWEN25_7B["vocab_size"], gen, device) for rows in packed]
    # one-row: the same rows one per step; more timed steps since each is short
    gen = torch.Generator().manual_seed(0)
    single = [make_batch([n], None, QWEN25_7B["vocab_size"], gen, device) for n in lengths[:3 * n_packed]]
    results = []
    for case in args.cases.split(","):
        try:
            if case == "one-row":
                results.append(run_case(model, opt, case, "sdpa", single, 3 * args.warmup, 3 * args.steps))
            elif case == "sdpa":
                results.append(run_case(model, opt, case, "sdpa", packed_batches, args.warmup, args.steps))
            elif case == "flex":
                results.append(run_case(model, opt, case, "flex_attention", packed_batches, args.warmup, args.steps))
            elif case == "varlen" and "varlen_signature" in env:
                results.append(run_case(model, opt, case, "tw_varlen", packed_batches, args.warmup, args.steps,
                                        varlen=True))
        except Exception as exc:
            row = {"case": case, "error": f"{type(exc).__name__}: {str(exc)[:400]}"}
            print(json.dumps(row), flush=True)
            results.append(row)
            torch.cuda.empty_cache()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = gpu.replace(" ", "_")
    payload = {"env": env, "budget": args.budget, "rows_mean": sum(lengths) / len(lengths), "results": results}
    (out / f"packed_attention_{tag}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
