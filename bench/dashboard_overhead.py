"""Does the live dashboard slow training? Step time of a plain torch loop with and without it.

    python bench/dashboard_overhead.py                # GPU when there is one, else CPU
    python bench/dashboard_overhead.py --device cpu --steps 30 --rounds 4

GPU: a ~110M-parameter Llama-shaped model (12 layers, hidden 768, vocab 32k, tied embeddings), bf16,
batch 8 x 512 tokens, fused AdamW. CPU: a tiny one of the same shape. Each round times `--steps` steps
after `--warmup` untimed ones, once bare and once with a LiveReporter (its NVML sampler thread on, a
frame a second drawn to a file-backed Console forced to act as a 120x40 terminal, on_log every step);
the order alternates between rounds so drift cancels. Overhead = median step time with / without - 1.

Writes bench/results/dashboard_overhead_<cpu|gpu-name>.json and, on an NVIDIA GPU, the GPU panel as it
looked mid-run to bench/results/gpu_panel_frame.txt (and the whole frame beside it).
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(device: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if device == "cuda":
        cfg = LlamaConfig(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                          num_key_value_heads=12, vocab_size=32000, max_position_embeddings=1024,
                          tie_word_embeddings=True)
        batch, seq, dtype = 8, 512, torch.bfloat16
    else:
        cfg = LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                          num_key_value_heads=2, vocab_size=4096, max_position_embeddings=256,
                          tie_word_embeddings=True)
        batch, seq, dtype = 4, 128, torch.float32
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device=device, dtype=dtype)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    data = torch.randint(0, cfg.vocab_size, (batch, seq), device=device)
    params = sum(p.numel() for p in model.parameters())
    return model, opt, data, params, batch, seq, str(dtype).replace("torch.", "")


def step_fn(model, opt, data, device: str):
    import torch

    def step() -> float:
        t0 = time.perf_counter()
        loss = model(input_ids=data, labels=data).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()  # the sync a real loop does when it logs
        if device == "cuda":
            torch.cuda.synchronize()
        step.last_loss = value
        return time.perf_counter() - t0

    step.last_loss = float("nan")
    return step


def timed_block(step, n_warm: int, n: int, reporter=None, start_step: int = 0, total: int = 0,
                tokens_per_step: int = 0) -> list[float]:
    times = []
    t_start = time.time()
    for i in range(n_warm + n):
        dt = step()
        if i >= n_warm:
            times.append(dt)
        if reporter is not None:
            s = start_step + i + 1
            elapsed = time.time() - t_start
            reporter.on_log({"step": s, "epoch": s / max(1, total), "loss": step.last_loss, "lr": 1e-4,
                             "grad_norm": 1.0, "tokens_per_s": tokens_per_step / dt, "elapsed_s": elapsed,
                             "eta_s": dt * (total - s), "peak_mem_gb": _peak_gb(), "time": time.time()})
            if s % 10 == 0:
                reporter.on_event(f"step {s}: synthetic event for the log tail")
    return times


def _peak_gb() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per block")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before each block")
    ap.add_argument("--rounds", type=int, default=4, help="bare/dashboard pairs, order alternating")
    ap.add_argument("--refresh", type=float, default=1.0, help="dashboard frames per second")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()

    import torch
    from rich.console import Console

    from wizard.monitor import panels
    from wizard.monitor.live import LiveReporter
    from wizard.monitor.nvml import start_sampler
    from wizard.monitor.reporting import RunInfo

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    gpu_name = torch.cuda.get_device_name(0) if device == "cuda" else None
    model, opt, data, params, batch, seq, dtype = build(device)
    step = step_fn(model, opt, data, device)
    for _ in range(max(3, args.warmup)):  # compile kernels, grow the allocator before anything is timed
        step()

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = {"bare": [], "dashboard": []}
    cpu = {"bare": [], "dashboard": []}  # process CPU seconds per timed step: what the threads cost
    frames, build_s, gpu_samples, reason = 0, 0.0, 0, None
    total_steps = args.rounds * 2 * (args.warmup + args.steps)
    done = 0
    captured = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for kind in (("bare", "dashboard") if r % 2 == 0 else ("dashboard", "bare")):
                c0 = time.process_time()
                if kind == "bare":
                    blocks["bare"].append(timed_block(step, args.warmup, args.steps))
                    cpu["bare"].append((time.process_time() - c0) / (args.warmup + args.steps))
                    done += args.warmup + args.steps
                    _progress(r, kind, blocks[kind][-1])
                    continue
                run_dir = Path(tmp) / f"run-{r}"
                run_dir.mkdir()
                sink = open(Path(tmp) / f"frames-{r}.ansi", "w", encoding="utf-8")
                console = Console(file=sink, force_terminal=True, width=120, height=40, color_system="truecolor")
                sampler = start_sampler(run_dir)  # as a run does: one sampler, handed to the dashboard
                rep = LiveReporter(run_dir, console, refresh_per_second=args.refresh, sampler=sampler)
                rep.on_start(RunInfo(run_dir=str(run_dir), name="bench", model=f"llama-{params / 1e6:.0f}M",
                                     task="sft", method="full", total_steps=total_steps,
                                     device=f"{device} ({gpu_name})" if gpu_name else device))
                blocks["dashboard"].append(timed_block(step, args.warmup, args.steps, rep, done, total_steps,
                                                       batch * seq))
                cpu["dashboard"].append((time.process_time() - c0) / (args.warmup + args.steps))
                done += args.warmup + args.steps
                _progress(r, kind, blocks[kind][-1])
                if r == args.rounds - 1 or captured is None:  # the panel while training runs
                    captured = _capture(rep, panels)
                frames += rep.frames
                build_s += rep.build_s
                gpu_samples += len(sampler.history)
                reason = sampler.unavailable_reason
                rep.on_end({"status": "finished", "message": "bench block done"})
                rep.close()
                sampler.stop()
                sink.close()

    bare = [t for b in blocks["bare"] for t in b]
    dash = [t for b in blocks["dashboard"] for t in b]
    med_bare, med_dash = statistics.median(bare), statistics.median(dash)
    per_round = [100.0 * (statistics.median(d) / statistics.median(b) - 1.0)
                 for b, d in zip(blocks["bare"], blocks["dashboard"])]
    overhead = 100.0 * (med_dash / med_bare - 1.0)
    result = {
        "what": "training step time with vs without the live dashboard (LiveReporter + NVML sampler)",
        "device": device, "gpu": gpu_name, "host": platform.node(), "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda if device == "cuda" else None,
        "model_params": params, "dtype": dtype, "batch": batch, "seq_len": seq,
        "timed_steps_per_block": args.steps, "warmup_per_block": args.warmup, "rounds": args.rounds,
        "refresh_per_second": args.refresh, "on_log_every_step": True,
        "step_s_median": {"bare": med_bare, "dashboard": med_dash},
        "step_s_mean": {"bare": statistics.mean(bare), "dashboard": statistics.mean(dash)},
        "step_s_stdev": {"bare": statistics.pstdev(bare), "dashboard": statistics.pstdev(dash)},
        "overhead_pct_median": round(overhead, 3),
        "overhead_pct_per_round": [round(x, 3) for x in per_round],
        "overhead_pct_mean": round(100.0 * (statistics.mean(dash) / statistics.mean(bare) - 1.0), 3),
        "under_2_pct": overhead < 2.0,
        "process_cpu_s_per_step_median": {k: statistics.median(v) for k, v in cpu.items()},
        "dashboard_frames": frames, "frame_build_ms_mean": round(1000 * build_s / frames, 2) if frames else None,
        "gpu_samples": gpu_samples, "nvml_unavailable_reason": reason,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    tag = "cpu" if device == "cpu" else re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    path = out_dir / f"dashboard_overhead_{tag}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if captured is not None:
        gpu_text, full_text, has_gpu = captured
        if has_gpu:
            (out_dir / "gpu_panel_frame.txt").write_text(gpu_text, encoding="utf-8")
        (out_dir / f"dashboard_frame_{tag}.txt").write_text(full_text, encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(f"\nwrote {path}" + ("" if not (captured and captured[2]) else f" and {out_dir / 'gpu_panel_frame.txt'}"))
    print(f"median step: bare {med_bare * 1000:.2f} ms, dashboard {med_dash * 1000:.2f} ms -> "
          f"overhead {overhead:+.2f}% ({'under' if overhead < 2 else 'OVER'} 2%)")
    return 0


def _progress(r: int, kind: str, times: list[float]) -> None:
    print(f"round {r + 1} {kind:9s}: median step {statistics.median(times) * 1000:.2f} ms", file=sys.stderr,
          flush=True)


def _capture(rep, panels):
    """The GPU panel (or the CPU/RAM one) and the whole frame, as plain text, from the live state."""
    from rich.console import Console

    def text(renderable, width, height=None):
        c = Console(width=width, height=height or 40, record=True, color_system=None, force_terminal=False,
                    file=io.StringIO())
        c.print(renderable)
        return c.export_text()

    with rep._lock:
        rep.state.now = time.time()
        gpu = text(panels.gpu_panel(rep.state, 100), 100)
        full = text(panels.render(rep.state, 120, 40), 120, 40)
        has_gpu = bool(rep.state.gpus)
    return gpu, full, has_gpu


if __name__ == "__main__":
    raise SystemExit(main())
