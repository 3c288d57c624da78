"""Checks a run passes before anything is created: output_dir can be written, and its disk holds what the run
will write. `run` stops on them with exit 2 before the run folder exists; `validate` reports the same.

The disk figure: every checkpoint the run keeps at once (train.save_total_limit, plus the one being written
before the oldest is rotated out), each holding the trained weights, the optimizer's states and the tokenizer,
and the final adapter (the whole model for method full). Exports (merge, GGUF) come later and are not counted.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wizard.errors import SpecError

GB = 10**9  # disk sizes in decimal GB, as df and file managers show them
SLACK = 1.1  # metadata, the trainer's state files, the logs and plots
UNBOUNDED_CHECKPOINTS = 10  # assumed when save_total_limit is unset and the step count is not known yet


def check_output_dir(spec) -> Path:
    """output_dir exists (it is created when missing) and takes a file; else SpecError naming the key."""
    out = Path(spec.output_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except FileExistsError:
        raise SpecError(f"output_dir '{spec.output_dir}': a file is there, not a folder",
                        hint="set output_dir to a folder, e.g. output_dir: runs") from None
    except OSError as exc:
        raise SpecError(f"output_dir '{spec.output_dir}': cannot write there ({exc.strerror or exc})",
                        hint="set output_dir to a folder you can write, e.g. output_dir: runs, or fix its "
                             "permissions") from None
    return out


@dataclass
class DiskNeed:
    checkpoints: int          # kept at once
    checkpoint_bytes: int
    final_bytes: int
    final: str                # "adapter", or "model" for method full
    note: str = ""

    @property
    def total_bytes(self) -> int:
        return int(SLACK * (self.checkpoints * self.checkpoint_bytes + self.final_bytes))

    def describe(self) -> str:
        return (f"~{self.total_bytes / GB:.2f} GB ({self.checkpoints} checkpoints of ~{self.checkpoint_bytes / GB:.2f} "
                f"GB and the final {self.final} of "
                f"~{self.final_bytes / GB:.2f} GB{self.note})")


def disk_need(spec, model_path: str | os.PathLike) -> DiskNeed | None:
    """What the run will write, from the model's config.json; None when the model's shape is unknown."""
    from wizard.estimate.memory import STATES, parameter_counts
    from wizard.estimate.shape import shape_from_config

    config = Path(model_path) / "config.json"
    if not config.is_file():
        return None
    try:
        params, trainable = parameter_counts(shape_from_config(config), spec.method, spec.lora.r,
                                             spec.lora.target_modules)
    except (ValueError, KeyError, TypeError):
        return None
    tokenizer = sum(f.stat().st_size for f in Path(model_path).iterdir()
                    if f.is_file() and f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")))
    eight_bit = spec.train.optimizer in ("adamw_8bit", "paged_adamw_8bit")
    state_bytes = 2 if eight_bit else 4 * STATES.get(spec.train.optimizer, 2)
    if spec.method == "full":
        weight_bytes = 4 if spec.train.precision == "fp32" or not _cuda() else 2
        weights = params * weight_bytes
        optimizer = params * state_bytes
    else:
        weights = trainable * 4  # adapters train and save in float32
        optimizer = trainable * state_bytes
    t = spec.train
    note = ""
    if t.save_total_limit is not None:
        kept = t.save_total_limit + 1
    elif t.max_steps > 0:
        kept = max(1, math.ceil(t.max_steps / t.save_steps))
    else:
        kept = UNBOUNDED_CHECKPOINTS
        note = f"; save_total_limit unset: {UNBOUNDED_CHECKPOINTS} assumed"
    return DiskNeed(kept, weights + optimizer + tokenizer, weights + tokenizer,
                    "model" if spec.method == "full" else "adapter", note)


def check_disk(spec, model_path: str | os.PathLike) -> DiskNeed | None:
    """SpecError when the disk under output_dir cannot hold what the run writes; the need otherwise."""
    import shutil

    need = disk_need(spec, model_path)
    if need is None:
        return None
    free = shutil.disk_usage(Path(spec.output_dir).expanduser()).free
    if need.total_bytes > free:
        limit = spec.train.save_total_limit
        raise SpecError(
            f"output_dir '{spec.output_dir}': the run needs {need.describe()}, but its disk has "
            f"{free / GB:.2f} GB free",
            hint="free space there, set output_dir to a bigger disk, or keep fewer checkpoints (train.save_total_limit"
                 f"{f', now {limit}' if limit is not None else ''})")
    return need


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
