"""One Trainer callback that keeps the run folder's files and the Reporter in step with training.

It reports progress (status running, step, losses, metrics.jsonl rows, checkpoints) through the run's
RunLifecycle; how the run ends is the lifecycle's to write. In a run on several processes every process runs it
(the Trainer calls callbacks everywhere) and takes part in its few collectives, at the same points; only rank 0
writes."""
from __future__ import annotations

import math
import resource
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from wizard import run_folder as rf
from wizard.engine import distributed
from wizard.engine.lifecycle import RunLifecycle
from wizard.engine.stopping import GracefulStop
from wizard.monitor.reporting import RunInfo

# Trainer log keys -> metrics.jsonl keys. DPO keys (rewards/*, logps/*) pass through unchanged.
_RENAME = {"learning_rate": "lr"}
_DROP = {"total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss",
         "num_input_tokens_seen", "train_tokens_per_second", "eval_runtime", "eval_samples_per_second",
         "eval_steps_per_second"}


def peak_memory_gb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**30 if sys.platform == "darwin" else 2**20)


class RunFolderCallback(TrainerCallback):
    def __init__(self, run: RunLifecycle, info: RunInfo, stop: GracefulStop | None = None,
                 tokens_per_process: bool = False):
        """tokens_per_process: the Trainer's token count is this process's alone (SFT counts on the host), so the
        tokens per second of a run on several processes sum them."""
        self.run = run
        self.world = run.world
        self.tokens_per_process = tokens_per_process
        self.stop = stop
        self.run_dir: Path = run.run_dir
        self.info = info
        self.t0 = time.time()
        self.start_step = 0
        self.last_tokens = 0
        self.last_time = self.t0
        self.best_eval = math.inf
        self.last_loss = None

    # -- Trainer hooks
    def on_train_begin(self, args, state, control, **kwargs):
        self.start_step = state.global_step
        self.t0 = self.last_time = time.time()
        self.last_tokens = int(state.num_input_tokens_seen or 0)
        self.info.total_steps = state.max_steps
        self.run.update(status="running", step=state.global_step, total_steps=state.max_steps)
        self.run.reporter.on_start(self.info)
        if state.global_step:
            self.run.event(f"resumed at step {state.global_step} of {state.max_steps}")

    def on_step_end(self, args, state, control, **kwargs):
        self._stop_if_asked(state, control)
        if control.should_save:  # the Trainer saves next: a write the disk refuses names this checkpoint
            self.run.writing = self.run_dir / rf.CHECKPOINTS / f"checkpoint-{state.global_step}"
        return control

    def _stop_if_asked(self, state, control) -> None:
        if self.stop is not None and self.world.distributed:
            # Every process stops after the same step, or one would wait for the others' gradients forever.
            self.stop.requested = distributed.agree_stop(self.stop.requested, self.world)
        if self.stop is not None and self.stop.requested is not None and not control.should_training_stop:
            import signal

            name = signal.Signals(self.stop.requested).name
            self.run.event(f"{name}: stopping after step {state.global_step}, saving a checkpoint for --resume "
                           "(a second signal stops at once)", "warning")
            control.should_save = True
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if not logs or set(logs) <= _DROP | {"epoch"}:
            return
        now = time.time()
        row: dict = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        for k, v in logs.items():
            if k in _DROP or k == "epoch":
                continue
            row[_RENAME.get(k, k)] = v
        is_eval = any(k.startswith("eval_") for k in row)
        if not is_eval:
            tokens = int(state.num_input_tokens_seen or 0)
            dt = max(now - self.last_time, 1e-9)
            new = tokens - self.last_tokens
            if self.tokens_per_process:
                new = distributed.total(new, self.world)
            row["tokens_per_s"] = round(new / dt, 1) if tokens else None
            self.last_tokens, self.last_time = tokens, now
            done = state.global_step - self.start_step
            elapsed = now - self.t0
            row["elapsed_s"] = round(elapsed, 2)
            row["eta_s"] = round(elapsed / done * (state.max_steps - state.global_step), 1) if done else None
            row["peak_mem_gb"] = round(peak_memory_gb(), 3)
            if "loss" in row:
                self.last_loss = row["loss"]
        else:
            ev = row.get("eval_loss")
            if ev is not None and ev < self.best_eval:
                self.best_eval = ev
        row["time"] = round(now, 3)
        if not self.world.writer:
            return
        rf.append_jsonl(self.run_dir / rf.METRICS, row)
        self.run.update(step=state.global_step, last_loss=self.last_loss,
                        best_eval_loss=None if math.isinf(self.best_eval) else self.best_eval)
        self.run.reporter.on_log(row)

    def on_save(self, args, state, control, **kwargs):
        ckpt = self.run_dir / rf.CHECKPOINTS / f"checkpoint-{state.global_step}"
        distributed.barrier(self.world)  # every process has written its part (its random state, its shard)
        if ckpt.is_dir() and self.world.writer:
            # Written last: resume only trusts checkpoints whose save finished.
            (ckpt / rf.COMPLETE).write_text(f"{time.time()}\n")
            self.run.writing = None
            self.run.event(f"checkpoint saved: {ckpt.relative_to(self.run_dir)}")
