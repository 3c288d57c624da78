"""How the engine tells the outside world what it is doing.

The engine calls a Reporter; it never prints on its own. `PlainReporter` writes one line per logging
step (for pipes, nohup, CI); the live dashboard (wizard/monitor) is another Reporter. Every event is
also in the run folder's files, so `tune-wizard watch` can rebuild the same view from another terminal.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO


@dataclass
class RunInfo:
    run_dir: str
    name: str
    model: str
    task: str
    method: str
    total_steps: int
    device: str                     # "cuda:0 (NVIDIA H100 80GB HBM3)" or "cpu"
    trainable_params: int = 0
    total_params: int = 0


class Reporter:
    """Override what you need; every hook is optional."""

    def on_start(self, info: RunInfo) -> None: ...

    def on_log(self, row: dict) -> None:
        """A metrics.jsonl row: step, epoch, loss, lr, grad_norm, tokens_per_s, elapsed_s, eta_s,
        peak_mem_gb (and eval_loss rows, DPO rewards/* keys)."""

    def on_event(self, text: str, level: str = "info") -> None:
        """A line for the log tail: warnings, checkpoint saves, evaluation."""

    def on_end(self, state: dict) -> None:
        """state.json's final content: status, final/best loss, elapsed, peak memory, adapter path."""

    def close(self) -> None: ...


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_log_line(row: dict, total_steps: int = 0) -> str:
    """The ms-swift-style line: step, loss, lr, grad norm, memory, speed, ETA. Plain text only."""
    if "eval_loss" in row:
        return f"[eval] step {row.get('step')}  eval_loss {row['eval_loss']:.4f}"
    parts = [f"step {row.get('step')}/{total_steps or '?'}"]
    if row.get("epoch") is not None:
        parts.append(f"epoch {row['epoch']:.2f}")
    for key, label, fmt in (("loss", "loss", ".4f"), ("lr", "lr", ".2e"), ("grad_norm", "grad_norm", ".3f"),
                            ("rewards/accuracies", "acc", ".2f"), ("rewards/margins", "margin", ".3f")):
        if row.get(key) is not None:
            parts.append(f"{label} {row[key]:{fmt}}")
    if row.get("peak_mem_gb") is not None:
        parts.append(f"mem {row['peak_mem_gb']:.2f} GiB")
    if row.get("tokens_per_s") is not None:
        parts.append(f"{row['tokens_per_s']:.0f} tok/s")
    parts.append(f"elapsed {fmt_duration(row.get('elapsed_s'))}")
    parts.append(f"eta {fmt_duration(row.get('eta_s'))}")
    return "  ".join(parts)


class PlainReporter(Reporter):
    """No escape codes, no redraws: one line per event, safe under nohup and in CI logs."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.total = 0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_start(self, info: RunInfo) -> None:
        self.total = info.total_steps
        share = 100.0 * info.trainable_params / info.total_params if info.total_params else 0.0
        self._print(f"run {info.name}: {info.model}, {info.task}/{info.method} on {info.device}, "
                    f"{info.total_steps} steps, trainable {info.trainable_params:,} of "
                    f"{info.total_params:,} parameters ({share:.2f}%)")
        self._print(f"run folder: {info.run_dir}")

    def on_log(self, row: dict) -> None:
        self._print(format_log_line(row, self.total))

    def on_event(self, text: str, level: str = "info") -> None:
        self._print(text if level == "info" else f"{level}: {text}")

    def on_end(self, state: dict) -> None:
        self._print(f"{state.get('status')}: {state.get('message', '')}".rstrip(": "))
