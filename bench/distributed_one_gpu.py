"""The distributed code paths on one GPU: torchrun with one process against the direct path, and FSDP-QLoRA.

A run on several GPUs needs several GPUs to measure (bench/distributed_two_gpus.py); what one GPU can prove:

  direct        `tune-wizard run SPEC` (LoRA, bf16): the reference losses
  torchrun_1    `torchrun --nproc-per-node 1 -m wizard run SPEC`: the same run as one process of a torchrun job
                (RANK/WORLD_SIZE set, accelerate's process group): the same losses as direct
  qlora         `tune-wizard run SPEC --set method=qlora`: the one-GPU QLoRA peak
  fsdp_qlora    torchrun, one process, method qlora with distributed.strategy fsdp: the 4-bit weights stored in
                bf16 (bnb_4bit_quant_storage) and wrapped by FSDP2 through accelerate; it loads, trains, saves a
                checkpoint and the adapter, and the adapter loads back onto the base model

Model: a Qwen2.5-1.5B shape with random bf16 weights (bench/token_batching.py's byte-level tokenizer: one token
per letter), data: the speed benchmark's log-normal lengths (seeded). Each case is a real `tune-wizard run`
process; losses and peaks come from its run folder (metrics.jsonl, state.json).

    source bench/gpu_env.sh && python3 bench/distributed_one_gpu.py [--steps 20] [--out bench/results]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packed_attention import row_lengths  # noqa: E402  (the seeded log-normal lengths)
from token_batching import with_byte_tokenizer, write_dataset  # noqa: E402

QWEN_1_5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
                 rms_norm_eps=1e-6, tie_word_embeddings=True)


def make_checkpoint(path: Path) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if (path / "config.json").is_file():
        return path
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(Qwen2Config(**QWEN_1_5B, dtype="bfloat16")).to(torch.bfloat16)
    model.save_pretrained(path)
    del model
    torch.cuda.empty_cache()
    return path


def spec_file(root: Path, model: Path, data: Path, steps: int) -> Path:
    import yaml

    spec = {"name": "dist1", "model": {"id": str(model), "hub": "local"}, "task": "sft", "method": "lora",
            "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
            "data": {"train": [str(data)], "max_length": 2048},
            "train": {"max_steps": steps, "logging_steps": 1, "save_steps": steps // 2, "warmup_ratio": 0.0,
                      "lr": 1e-4, "scheduler": "constant", "batch_tokens": 4096, "grad_accum": 2},
            "output_dir": str(root / "runs")}
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def run(case: str, argv: list[str], root: Path) -> dict:
    out = root / case
    t = time.time()
    p = subprocess.run(argv + ["--plain", "--set", f"output_dir={out}"], capture_output=True, text=True)
    wall = time.time() - t
    runs = sorted(out.glob("dist1-*")) if out.is_dir() else []
    if p.returncode != 0 or not runs:
        return {"case": case, "ok": False, "rc": p.returncode, "tail": (p.stdout + p.stderr)[-3000:]}
    run_dir = runs[-1]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    state = json.loads((run_dir / "state.json").read_text())
    info = json.loads((run_dir / "run.json").read_text())
    train = [r for r in rows if "loss" in r]
    speeds = [r["tokens_per_s"] for r in train[3:] if r.get("tokens_per_s")]
    return {"case": case, "ok": True, "wall_s": round(wall, 1), "status": state["status"],
            "losses": [round(r["loss"], 5) for r in train], "peak_alloc_gb": state.get("peak_mem_gb"),
            "tokens_per_s_after_3": round(sum(speeds) / len(speeds), 1) if speeds else None,
            "strategy": info.get("strategy"), "world_size": info.get("world_size"),
            "checkpoints": sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")),
            "adapter": sorted(p.name for p in (run_dir / "adapter").iterdir()) if (run_dir / "adapter").is_dir()
            else None, "run_dir": str(run_dir)}


COLLECTIVES = r"""
import os, sys, torch
sys.path.insert(0, os.getcwd())
from wizard.engine import distributed as d
w = d.World(rank=0, local_rank=0, size=2)  # as a rank of a run does; the process group itself is of one
d.init(w)
import torch.distributed as dist
out = {"backend": dist.get_backend(), "device": torch.cuda.current_device(),
       "broadcast": d.broadcast({"run": "x"}, w), "stop": d.agree_stop(15, w), "none": d.agree_stop(None, w),
       "total": d.total(7, w)}
d.barrier(w)
d.shutdown()
print(out)
"""


def collectives() -> dict:
    """The engine's own collectives (wizard.engine.distributed) on a GPU: NCCL process group for the Trainer, a
    gloo group beside it for the flags, in one process (torchrun's variables set by hand)."""
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29533"}
    p = subprocess.run([sys.executable, "-c", COLLECTIVES], capture_output=True, text=True, env=env)
    return {"case": "collectives", "ok": p.returncode == 0, "out": (p.stdout or p.stderr)[-1500:]}


def adapter_loads(model: Path, adapter: Path) -> dict:
    """The FSDP-saved adapter onto the base model (bf16): its keys and a forward pass."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.bfloat16).cuda()
    peft = PeftModel.from_pretrained(base, adapter)
    n = sum(1 for name, _ in peft.named_parameters() if "lora_" in name)
    with torch.no_grad():
        logits = peft(torch.tensor([[5, 6, 7, 8]], device="cuda")).logits
    return {"lora_tensors": n, "finite": bool(torch.isfinite(logits).all())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cache", default="/tmp/dist1-qwen1.5b")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--only", choices=["collectives"], help="run only this case")
    a = ap.parse_args()
    if a.only == "collectives":
        print(json.dumps(collectives(), indent=2))
        return
    root = Path("/tmp/dist1")
    root.mkdir(parents=True, exist_ok=True)
    model = with_byte_tokenizer(make_checkpoint(Path(a.cache)), Path(a.cache + "-bytes"))
    data = write_dataset(root / "data.jsonl", row_lengths(400, seed=3), seed=3)
    spec = str(spec_file(root, model, data, a.steps))
    wizard = [sys.executable, "-m", "wizard", "run", spec]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                "-m", "wizard", "run", spec]
    results = [run("direct", wizard, root), run("torchrun_1", torchrun, root),
               run("qlora", wizard + ["--set", "method=qlora"], root),
               run("fsdp_qlora", torchrun + ["--set", "method=qlora", "--set", "distributed.strategy=fsdp"], root)]
    by = {r["case"]: r for r in results}
    if by["direct"]["ok"] and by["torchrun_1"]["ok"]:
        d, t = by["direct"]["losses"], by["torchrun_1"]["losses"]
        by["torchrun_1"]["max_rel_diff_vs_direct"] = max(abs(x - y) / abs(x) for x, y in zip(d, t))
    if by["fsdp_qlora"]["ok"] and by["fsdp_qlora"]["adapter"]:
        by["fsdp_qlora"]["adapter_check"] = adapter_loads(model, Path(by["fsdp_qlora"]["run_dir"]) / "adapter")
    gpu = torch.cuda.get_device_name(0)
    report = {"gpu": gpu, "torch": torch.__version__, "steps": a.steps, "model": "Qwen2.5-1.5B shape, random bf16",
              "results": results}
    out = Path(a.out) / f"distributed_one_gpu_{gpu.replace(' ', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
