"""How a run uses several GPUs (spec `distributed`): how many processes, and DDP or FSDP.

One rule, used by the engine when a run starts, by `tune-wizard estimate` and by the launcher:

- ddp: every GPU holds the whole model and trains on its share of each update; the gradients are averaged. The
  fastest when the model fits one GPU (LoRA, QLoRA, full fine-tuning of small models);
- fsdp: weights, adapters, gradients and optimizer states are split across the GPUs, and each layer is gathered
  whole only while it is computed: for models that do not fit one GPU (full fine-tuning and LoRA of bigger
  models, QLoRA of 70B on 2 x 80 GB with the 4-bit weights stored in the compute dtype);
- auto: ddp when the memory estimate of one process fits the GPU's free memory with the same headroom the token
  budget uses (AUTO_CKPT_HEADROOM), else fsdp. On CPU processes (gloo; for testing) always ddp.
"""
from __future__ import annotations

from wizard.estimate.memory import AUTO_CKPT_HEADROOM, available_memory, estimate_for_spec, first_gpu


def processes(gpus: int | str, gpu_count: int) -> int:
    """Processes per machine for the spec's `gpus` (a number or `all`) on a machine with GPU_COUNT GPUs (0: a CPU
    machine, where `all` means one process)."""
    if gpus == "all":
        return max(gpu_count, 1)
    return int(gpus)


def choose(spec, hardware, shape, n: int) -> tuple[str, str]:
    """(strategy, why) for a run of N processes: `single` for one."""
    if n <= 1:
        return "single", "one process"
    wanted = spec.distributed.strategy
    if wanted != "auto":
        return wanted, "set in the spec"
    if first_gpu(hardware) is None:
        return "ddp", f"{n} CPU processes (gloo): a copy of the model in each"
    avail, where = available_memory(hardware)
    if shape is None or not avail:
        return "ddp", "the model's size or the GPU's memory is unknown: a copy on each GPU"
    one = estimate_for_spec(spec, hardware, shape=shape)
    room = avail * AUTO_CKPT_HEADROOM
    if one.total_gb <= room:
        return "ddp", f"the model fits one GPU ({one.total_gb:.1f} of {avail:.1f} GiB free): a copy on each is fastest"
    split = estimate_for_spec(spec, hardware, shape=shape, shards=n)
    return "fsdp", (f"{one.total_gb:.1f} GiB does not fit one GPU ({avail:.1f} GiB free on {where}); split over {n} "
                    f"GPUs: ~{split.total_gb:.1f} GiB each")
