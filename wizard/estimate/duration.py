"""A rough training time for a spec on this machine, from two measured runs scaled by model size and by the
device's peak speed. Rough on purpose: it tells a 5-minute run from a 9-hour one (a 7B QLoRA on a 2-core CPU),
not minutes from minutes.

Measured (DESIGN.md, 2026-12-02):
- one H200, Qwen2.5-7B shape (7.6 B parameters), QLoRA, 2048-token passes, checkpointing off: 0.198 s a pass,
  of which ~0.08 s is the fixed cost of a step (wizard.estimate.batching's step-time model), so ~17,400
  tokens/s for the per-token part;
- two idle CPU cores, the bundled demo (SmolLM2-135M, QLoRA): ~640 tokens a step in ~6.5 s, ~100 tokens/s.
Training reads each token forward and backward: ~4 x parameters FLOPs with frozen base weights (LoRA,
QLoRA), ~6 x for full training; checkpointing recomputes the forward (batching.CHECKPOINTING_COST). DPO
runs each pair's chosen and rejected answers through the policy and the reference: ~3x the tokens of SFT.
Other GPUs: their peak dense bf16 (fp16 where they lack it) tensor throughput on the vendors' datasheets,
relative to the H200's 989 TFLOPS; real runs differ with memory bandwidth and kernels.
"""
from __future__ import annotations

from dataclasses import dataclass

from wizard.estimate.batching import CHECKPOINTING_COST

H200_FLOPS = 4 * 7.6e9 * 17_400      # effective training FLOP/s measured on one H200
CPU_CORE_FLOPS = 4 * 0.135e9 * 100 / 2  # effective FLOP/s of one CPU core (the demo on two)
GPU_STEP_S = 0.08                    # the fixed cost of a step on a GPU (kernel launches, dequantizing)
DPO_FACTOR = 3.0
# By name, first match wins: (part of the GPU's name, speed relative to the H200).
GPU_SPEED = (("H200", 1.0), ("H100", 1.0), ("H800", 1.0), ("GH200", 1.0), ("B200", 2.3), ("A100", 0.32),
             ("A800", 0.32), ("L40", 0.37), ("A6000", 0.16), ("A40", 0.15), ("A10", 0.13), ("L4", 0.12),
             ("4090", 0.17), ("3090", 0.07), ("V100", 0.13), ("T4", 0.066))
UNKNOWN_GPU_SPEED = 0.1  # an A10-class card, the common rented one
HOURS_WARNING_S = 3600.0
TYPICAL_ROW_TOKENS = 340  # rows of unknown length: the mean of the realistic instruction data measured


@dataclass(frozen=True)
class Duration:
    seconds: float
    tokens_per_s: float
    device: str           # what it was scaled to, in words

    @property
    def long(self) -> bool:
        return self.seconds >= HOURS_WARNING_S

    def describe(self) -> str:
        return f"~{human(self.seconds)} at ~{self.tokens_per_s:,.0f} tokens/s ({self.device})"


def human(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def device_speed(hardware) -> tuple[float, str, bool]:
    """(effective training FLOP/s, the device in words, on a GPU) for the first usable GPU, else the CPU."""
    gpus = list(getattr(hardware, "usable_gpus", None) or []) if hardware is not None else []
    if gpus:
        name = str(gpus[0].name)
        rel = next((r for key, r in GPU_SPEED if key.lower() in name.lower()), None)
        where = name if rel is not None else f"{name}: speed unknown, taken as an A10's"
        return H200_FLOPS * (rel if rel is not None else UNKNOWN_GPU_SPEED), where, True
    cores = max(1, int(getattr(hardware, "cpu_count", 0) or 1))
    return CPU_CORE_FLOPS * cores, f"CPU, {cores} core{'s' if cores != 1 else ''}", False


def estimate_duration(params: float, tokens: float, passes: int, *, method: str, task: str, checkpointing: bool,
                      hardware) -> Duration:
    """The time to train `tokens` tokens in `passes` forward passes of a model of `params` parameters."""
    flops, where, gpu = device_speed(hardware)
    per_token = (6 if method == "full" else 4) * params * (CHECKPOINTING_COST if checkpointing else 1.0)
    rate = flops / per_token
    work = tokens * (DPO_FACTOR if task == "dpo" else 1.0)
    seconds = work / rate + (passes * GPU_STEP_S if gpu else 0.0)
    return Duration(seconds, tokens / seconds if seconds else rate, where)
