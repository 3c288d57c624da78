"""What a run that ran out of GPU memory says: the estimate's figure for its spec against the GPU, and the one
change that fits (from the estimate's own list), so the next attempt is not a guess."""
from __future__ import annotations

import dataclasses
from pathlib import Path


def out_of_memory_advice(spec, model_path: str | Path) -> str | None:
    from wizard import hardware
    from wizard.engine.lifecycle import OOM_HINT
    from wizard.estimate import estimate_for_spec, fitting_change, shape_from_config

    hw = hardware.detect()
    if not hw.gpus:
        return None
    cap = hardware.gpu_memory_cap()
    total = min(cap, hw.gpus[0].total_gb) if cap else hw.gpus[0].total_gb
    # Judged against the whole GPU (or --gpu-memory): what is free right now is what the failed run still holds.
    whole = dataclasses.replace(hw.gpus[0], free_gb=total)
    hw = dataclasses.replace(hw, gpus=[whole, *hw.gpus[1:]])
    config = Path(model_path) / "config.json"
    b = estimate_for_spec(spec, hw, shape=shape_from_config(config) if config.is_file() else None)
    text = f"the estimate for this spec is {b.total_gb:.1f} GiB of the GPU's {total:.1f} GiB"
    change = fitting_change(b, total)
    if change:
        resumable = "gradient_checkpointing" in change
        return (f"{text}; the change that fits: {change}"
                + ("; then --resume continues from the newest checkpoint" if resumable else
                   "; it changes the run, so start it again with the change"))
    return f"{text}; {OOM_HINT}"
