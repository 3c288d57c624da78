"""A synthetic run fed to the reporter `make_reporter` picks: see the dashboard without training.

    python -m wizard.monitor.synthetic_run RUN_DIR [--steps 20] [--delay 0.1] [--dpo] [--fail]

It writes what the engine writes (state.json, metrics.jsonl, train.log, gpu.jsonl from its one sampler,
which the dashboard draws) so `tune-wizard watch RUN_DIR` can follow it from another terminal, and the tests
drive it in a real pseudo-terminal and through a pipe.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import time
from pathlib import Path

from wizard import run_folder as rf
from wizard.monitor.live import make_reporter
from wizard.monitor.nvml import start_sampler
from wizard.monitor.reporting import RunInfo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wizard.monitor.synthetic_run")
    ap.add_argument("run_dir")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--delay", type=float, default=0.1, help="seconds between logging steps")
    ap.add_argument("--dpo", action="store_true")
    ap.add_argument("--fail", action="store_true", help="end as a failed run")
    args = ap.parse_args(argv)

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = rf.take_lock(run_dir)  # one writer, as a real run: readers tell a live run from one whose process is gone
    (run_dir / rf.SPEC).write_text(f"version: 1\nname: demo\nmodel: {{id: tiny-llama}}\n"
                                   f"task: {'dpo' if args.dpo else 'sft'}\nmethod: lora\n", encoding="utf-8")
    rf.write_json_atomic(run_dir / rf.RUN_INFO, {"seed": 42, "synthetic": True})
    state = {"status": "running", "name": "demo", "model": "tiny-llama", "task": "dpo" if args.dpo else "sft",
             "method": "lora", "step": 0, "total_steps": args.steps, "started_at": time.time(),
             "updated_at": time.time(), "device": "cpu", "run_dir": str(run_dir), "adapter_dir": None,
             "message": "", "pid": os.getpid()}
    rf.write_json_atomic(run_dir / rf.STATE, state)
    log = open(run_dir / rf.LOG, "a", encoding="utf-8")

    def event(text: str, level: str = "info") -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"{stamp},000 {level.upper()} wizard.run: {text}\n")
        log.flush()
        reporter.on_event(text, level)

    sampler = start_sampler(run_dir)
    reporter = make_reporter(run_dir, sampler=sampler)
    print(f"reporter: {type(reporter).__name__}", flush=True)
    reporter.on_start(RunInfo(run_dir=str(run_dir), name="demo", model="tiny-llama", task=state["task"],
                              method="lora", total_steps=args.steps, device="cpu",
                              trainable_params=1_000, total_params=100_000))
    rng = random.Random(0)
    t0 = time.time()
    best = math.inf
    loss = 0.0
    try:
        for step in range(1, args.steps + 1):
            time.sleep(args.delay)
            loss = 2.0 * math.exp(-step / max(1, args.steps / 4)) + 0.2 + rng.random() * 0.1
            elapsed = time.time() - t0
            row = {"step": step, "epoch": round(step / args.steps, 4), "loss": round(loss, 4), "lr": 1e-3,
                   "grad_norm": round(0.5 + rng.random(), 3), "tokens_per_s": 1000.0,
                   "elapsed_s": round(elapsed, 2), "eta_s": round(elapsed / step * (args.steps - step), 1),
                   "peak_mem_gb": 0.5, "time": round(time.time(), 3)}
            if args.dpo:
                row.update({"rewards/chosen": 0.1 * step, "rewards/rejected": -0.05 * step,
                            "rewards/margins": 0.15 * step, "rewards/accuracies": min(1.0, 0.5 + step / args.steps)})
            rf.append_jsonl(run_dir / rf.METRICS, row)
            reporter.on_log(row)
            if step % 10 == 0:
                ev = {"step": step, "epoch": row["epoch"], "eval_loss": round(loss + 0.1, 4), "time": row["time"]}
                best = min(best, ev["eval_loss"])
                rf.append_jsonl(run_dir / rf.METRICS, ev)
                reporter.on_log(ev)
                event(f"checkpoint saved: checkpoints/checkpoint-{step}")
            if step == args.steps // 2:
                print("a stray print from a library", flush=True)  # must not break the dashboard
            state.update(step=step, updated_at=time.time())
            rf.write_json_atomic(run_dir / rf.STATE, state)
        if args.fail:
            raise RuntimeError("synthetic failure")
        state.update(status="finished", message="training finished", adapter_dir=str(run_dir / rf.ADAPTER),
                     next_commands=[f"tune-wizard chat {run_dir}", f"tune-wizard export {run_dir} --merge"])
    except RuntimeError as exc:
        event(f"training failed: {exc}", "error")
        state.update(status="failed", message=f"training failed: {exc}", next_commands=[])
    state.update(final_loss=round(loss, 4), best_eval_loss=None if math.isinf(best) else best,
                 elapsed_s=round(time.time() - t0, 2), peak_mem_gb=0.5, updated_at=time.time())
    rf.write_json_atomic(run_dir / rf.STATE, state)
    reporter.on_end(state)
    reporter.close()
    sampler.stop()
    log.close()
    lock.release()
    print("DONE", flush=True)
    return 0 if state["status"] == "finished" else 1


if __name__ == "__main__":
    raise SystemExit(main())
