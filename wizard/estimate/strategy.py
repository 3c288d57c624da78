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
    """(strategy, why) for a run of N processes: `single` for one (unless the spec sets fsdp: FSDP's code path on
    one GPU, which is how it is checked without a second one)."""
    wanted = spec.distributed.strategy
    if n <= 1:
        return ("fsdp", "set in the spec (one process)") if wanted == "fsdp" else ("single", "one process")
    if wanted != "auto":
        return wanted, "set in the spec"
    if first_gpu(hardware) is None:
        return "ddp", f"{n} CPU processes (gloo): a copy of the model in each"
    avail, where = available_memory(hardware)
    if shape is None or not avail:
        return "ddp", "the model's size or the GPU's memory is unknown: a copy on each GPU"
    need = ddp_gb(estimate_for_spec(spec, hardware, shape=shape))
    room = avail * AUTO_CKPT_HEADROOM
    if need <= room:
        return "ddp", f"the model fits one GPU ({need:.1f} of {avail:.1f} GiB free): a copy on each is fastest"
    split = estimate_for_spec(spec, hardware, shape=shape, shards=n)
    return "fsdp", (f"{need:.1f} GiB does not fit one GPU ({avail:.1f} GiB free on {where}); split over {n} "
                    f"GPUs: ~{split.total_gb:.1f} GiB each")


def ddp_gb(one) -> float:
    """Per GPU with DDP: one process's estimate plus DDP's all-reduce buckets, a second copy of the gradients (the
    Trainer leaves gradient_as_bucket_view off)."""
    return one.total_gb + one.parts.get("gradients", 0.0)
