"""Runs on two GPUs of one machine, through the real CLI (`tune-wizard run --gpus N`):

  scaling      DDP, Qwen2.5-7B shape, QLoRA, the speed benchmark's realistic lengths (log-normal, median 269):
               real tokens/s on 2 GPUs against 1 GPU with the same global batch (1 GPU: 2 passes per update; 2 GPUs:
               1 each), over the steps after --warmup; the losses of the first steps side by side (bf16: they
               agree to ~1e-2 relative, not bit for bit: the all-reduce sums in another order)
  sharded      FSDP-QLoRA of a large shape (default Qwen2.5-32B; --big llama70b for a Llama-3-70B shape when the
               disk holds its ~140 GB of random bf16 weights): trains, checkpoints, is stopped, resumes; its peak
               per GPU (rank 0's torch.cuda.max_memory_allocated, state.json) beside the estimate's FSDP figure
               (`tune-wizard estimate --gpus 2 --json`) and beside the one-GPU QLoRA peak of the same shape
  dashboard    `tune-wizard run SPEC --gpus 2` in a pseudo-terminal: the live dashboard lists both GPUs, Ctrl-C stops
               both ranks (exit 130, one run folder, a checkpoint), `--resume` finishes it
  doctor       `tune-wizard doctor --no-network`: NCCL and the GPUs' interconnect

With --gpus 1 every case runs its one-GPU half only (what a one-GPU machine can check of this script).

    source bench/gpu_env.sh && python3 bench/distributed_two_gpus.py [--gpus 2] [--cases scaling,sharded,...]
"""
from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packed_attention import row_lengths  # noqa: E402
from qlora_vs_hf_recipe import QWEN7B  # noqa: E402
from token_batching import with_byte_tokenizer, write_dataset  # noqa: E402

QWEN32B = dict(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
               num_key_value_heads=8, vocab_size=152064, max_position_embeddings=32768, rope_theta=1e6,
               tie_word_embeddings=False, rms_norm_eps=1e-6)
LLAMA70B = dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=5e5,
                tie_word_embeddings=False, rms_norm_eps=1e-5)
ROOT = Path("/tmp/dist2")
CLI = [sys.executable, "-m", "wizard"]


def checkpoint(path: Path, shape: dict, family: str) -> Path:
    """Random bf16 weights of SHAPE, written layer by layer on the GPU (a 70B never sits in host memory whole)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if (path / "config.json").is_file():
        return path
    cfg = AutoConfig.for_model(family, **shape)
    cfg.dtype = "bfloat16"
    torch.manual_seed(0)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    model = model.to_empty(device="cuda").to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    model.save_pretrained(path, max_shard_size="5GB")
    del model
    torch.cuda.empty_cache()
    return path


def write_spec(name: str, model: Path, data: Path, **train) -> Path:
    spec = {"name": name, "model": {"id": str(model), "hub": "local"}, "task": "sft", "method": "qlora",
            "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
            "data": {"train": [str(data)], "max_length": 2048},
            "train": {"logging_steps": 1, "warmup_ratio": 0.0, "lr": 1e-4, "scheduler": "constant",
                      "save_steps": 10**6, **train},
            "output_dir": str(ROOT / "runs" / name)}
    path = ROOT / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def cli_run(spec: Path, *args: str) -> tuple[int, str, Path | None]:
    p = subprocess.run([*CLI, "run", str(spec), "--plain", *args], capture_output=True, text=True)
    out = yaml.safe_load(spec.read_text())["output_dir"]
    runs = sorted(Path(out).glob("*-*")) if Path(out).is_dir() else []
    return p.returncode, (p.stdout + p.stderr)[-3000:], (runs[-1] if runs else None)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def scaling(model: Path, data: Path, gpus: int, steps: int, warmup: int) -> dict:
    out = {}
    for n in sorted({1, gpus}):
        spec = write_spec(f"scale{n}", model, data, max_steps=steps, batch_tokens=8192, grad_accum=gpus // n)
        code, tail, run = cli_run(spec, "--gpus", str(n))
        if code != 0:
            out[f"{n}_gpu"] = {"ok": False, "tail": tail}
            continue
        rows = [r for r in metrics(run) if "loss" in r]
        timed = [r for r in rows if r["step"] > warmup]
        tokens = sum(r["tokens_per_s"] * 1 for r in timed if r.get("tokens_per_s"))
        out[f"{n}_gpu"] = {"ok": True, "tokens_per_s": round(tokens / max(len(timed), 1), 1),
                           "timed_steps": len(timed), "losses_first_5": [round(r["loss"], 4) for r in rows[:5]],
                           "peak_gb_rank0": json.loads((run / "state.json").read_text()).get("peak_mem_gb")}
    if gpus > 1 and out.get("1_gpu", {}).get("ok") and out.get(f"{gpus}_gpu", {}).get("ok"):
        one, two = out["1_gpu"], out[f"{gpus}_gpu"]
        out["speedup"] = round(two["tokens_per_s"] / one["tokens_per_s"], 3)
        out["max_rel_loss_diff_first_5"] = max(abs(a - b) / abs(a) for a, b in
                                               zip(one["losses_first_5"], two["losses_first_5"]))
    return out


def sharded(model: Path, data: Path, gpus: int) -> dict:
    out = {}
    spec = write_spec("sharded", model, data, max_steps=6, save_steps=3, batch_tokens=4096, grad_accum=1)
    est = subprocess.run([*CLI, "estimate", str(spec), "--json", "--gpus", str(max(gpus, 2)),
                          "--set", "distributed.strategy=fsdp"], capture_output=True, text=True)
    if est.returncode == 0:
        e = json.loads(est.stdout)
        out["estimate_one_gpu_gb"] = e["estimate"]["total_gb"]
        out["estimate_fsdp_per_gpu_gb"] = e.get("gpus", {}).get("fsdp_gb")
    code, tail, run = cli_run(spec, "--gpus", "1")
    out["one_gpu_qlora"] = {"ok": code == 0, "peak_gb": json.loads((run / "state.json").read_text()).get(
        "peak_mem_gb") if run else None, **({} if code == 0 else {"tail": tail})}
    if gpus < 2:
        return out
    fsdp = ["--gpus", str(gpus), "--set", "distributed.strategy=fsdp"]
    code, tail, run = cli_run(spec, *fsdp, "--set", "train.max_steps=3")
    resumed = cli_run(spec, *fsdp, "--resume") if code == 0 else (None, "", None)
    state = json.loads((run / "state.json").read_text()) if run else {}
    out["fsdp"] = {"ok": code == 0 and resumed[0] == 0, "status": state.get("status"), "step": state.get("step"),
                   "peak_gb_rank0": state.get("peak_mem_gb"),
                   "checkpoints": sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*")) if run else [],
                   **({} if code == 0 else {"tail": tail}), **({} if resumed[0] in (0, None) else
                                                                {"resume_tail": resumed[1]})}
    if out["fsdp"]["peak_gb_rank0"] and out.get("estimate_fsdp_per_gpu_gb"):
        out["fsdp"]["estimate_error"] = round(out["estimate_fsdp_per_gpu_gb"] / out["fsdp"]["peak_gb_rank0"] - 1, 3)
    return out


def dashboard(model: Path, data: Path, gpus: int) -> dict:
    """The real CLI in a pseudo-terminal: the GPU panel, Ctrl-C, --resume."""
    spec = write_spec("pty", model, data, max_steps=400, save_steps=5, batch_tokens=4096, grad_accum=1)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(COLUMNS="140", LINES="45", TERM="xterm-256color")
        os.execv(sys.executable, [*CLI, "run", str(spec), "--gpus", str(gpus)])
    screen, t0, sent, done, status = b"", time.time(), None, 0, 0
    while time.time() - t0 < 400:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                screen += os.read(fd, 65536)
            except OSError:
                break
        if sent is None and b"step 8" in screen:
            os.write(fd, b"\x03")  # Ctrl-C, as typed
            sent = time.time()
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
    if not done:
        done, status = os.waitpid(pid, 0)
    ended = time.time()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    name = torch.cuda.get_device_name(0)
    short = name.replace("NVIDIA ", "")
    runs = sorted((ROOT / "runs" / "pty").glob("pty-*"))
    state = json.loads((runs[-1] / "state.json").read_text()) if runs else {}
    resumed = cli_run(spec, "--gpus", str(gpus), "--resume", "--set", "train.max_steps=12")
    return {"exit": os.waitstatus_to_exitcode(status),
            "gpu_rows": [f"{i} {name}" in text or f"{i} {short}" in text for i in range(gpus)],
            "run_folders": len(runs), "status": state.get("status"), "step": state.get("step"),
            "stopped_after_s": round(ended - sent, 1) if sent else None, "resume_exit": resumed[0],
            "screen_tail": text[-1500:]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--cases", default="doctor,scaling,sharded,dashboard")
    ap.add_argument("--big", choices=["qwen32b", "llama70b"], default="qwen32b")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    ROOT.mkdir(parents=True, exist_ok=True)
    data = write_dataset(ROOT / "data.jsonl", row_lengths(4000, seed=1), seed=1)
    cases = a.cases.split(",")
    report: dict = {"gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                    "torch": torch.__version__, "processes": a.gpus}
    if "doctor" in cases:
        report["doctor"] = subprocess.run([*CLI, "doctor", "--no-network"], capture_output=True, text=True).stdout
    small = None
    if {"scaling", "dashboard"} & set(cases):
        small = with_byte_tokenizer(checkpoint(Path("/tmp/qwen7b"), QWEN7B, "qwen2"), Path("/tmp/qwen7b-bytes"))
    if "scaling" in cases:
        report["scaling"] = scaling(small, data, a.gpus, a.steps, a.warmup)
    if "sharded" in cases:
        shape, family = (QWEN32B, "qwen2") if a.big == "qwen32b" else (LLAMA70B, "llama")
        big = with_byte_tokenizer(checkpoint(Path(f"/tmp/{a.big}"), shape, family), Path(f"/tmp/{a.big}-bytes"))
        report["sharded"] = {"shape": a.big, **sharded(big, data, a.gpus)}
    if "dashboard" in cases:
        report["dashboard"] = dashboard(small, data, a.gpus)
    name = report["gpus"][0].replace(" ", "_") if report["gpus"] else "cpu"
    out = Path(a.out) / f"distributed_{a.gpus}gpu_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
