"""What to change when an estimate does not fit: the verdict against the memory available, and the changes that
lower it, each with what it saves on its own (the estimate run again with that one change), biggest first.
`tune-wizard estimate`, the wizard's fit choice and the out-of-memory advice of a failed run all read them here."""
from __future__ import annotations

from wizard.estimate.memory import Breakdown, estimate


def verdict(b: Breakdown, available_gb: float) -> tuple[bool, list[str]]:
    """Whether the estimate fits in `available_gb`, and what to change when it does not (biggest saving
    first, each with what it saves on its own)."""
    fits = b.total_gb <= available_gb
    advice: list[str] = []
    if fits:
        if b.total_gb > 0.9 * available_gb:
            advice.append(f"tight: {b.total_gb:.1f} of {available_gb:.1f} GiB; longer rows than expected or "
                          "another process on the GPU will run out of memory")
        return True, advice
    over = b.total_gb - available_gb
    advice.append(f"needs about {over:.1f} GiB more than the {available_gb:.1f} GiB available")
    advice += [_line(text, saved) for saved, text in _ranked_changes(b)]
    return False, advice


def fitting_change(b: Breakdown, available_gb: float) -> str | None:
    """The one change of `verdict`'s list (biggest saving first) that alone brings B within AVAILABLE_GB."""
    for saved, text in _ranked_changes(b):
        if saved is not None and b.total_gb - saved <= available_gb:
            return text
    return None


def _ranked_changes(b: Breakdown) -> list[tuple[float | None, str]]:
    """(GiB saved or None when the shape is unknown, the change) for each change that lowers B, biggest first."""
    inp = b.inputs
    shape_free = {k: v for k, v in inp.items() if k in ("precision", "lora_r", "target_modules", "optimizer",
                                                          "lora_dropout", "device", "task", "packed")}
    base = dict(method=inp["method"], max_length=inp["max_length"], batch_size=inp["batch_size"],
                grad_ckpt=inp["grad_ckpt"], **shape_free)

    def saves(**change) -> float | None:
        if b.shape is None:
            return None
        return b.total_gb - estimate(b.shape, **{**base, **change}).total_gb

    changes: list[tuple[str, dict]] = []
    if inp["method"] in ("full", "lora"):
        alt = "qlora" if inp["method"] == "lora" else "lora"
        changes.append(("method: qlora (4-bit frozen weights)" if alt == "qlora" else
                        "method: lora (train adapters, not every weight)", {"method": alt}))
    if not inp["grad_ckpt"]:
        changes.append(("train.gradient_checkpointing: on (recompute each layer in backward)", {"grad_ckpt": True}))
    if inp["batch_size"] > 1:
        changes.append((f"train.batch_size: 1 with train.grad_accum x{inp['batch_size']} (same total batch)",
                        {"batch_size": 1}))
    if inp["max_length"] > 256:
        half = max(256, inp["max_length"] // 2)
        changes.append((f"train.batch_tokens: {half} (fewer tokens per forward pass; not below data.max_length)"
                        if inp.get("packed") else f"data.max_length: {half} (longer rows are truncated or dropped)",
                        {"max_length": half}))
    if inp["optimizer"] in ("adamw_torch", "adamw_torch_fused", "paged_adamw_32bit") and inp["method"] == "full":
        changes.append(("train.optimizer: paged_adamw_8bit (8-bit states that can spill to CPU RAM)",
                        {"optimizer": "paged_adamw_8bit"}))
    return sorted(((saves(**change), text) for text, change in changes), key=lambda x: -(x[0] or 0))


def _line(text: str, saved: float | None) -> str:
    return f"{text}: saves ~{saved:.1f} GiB" if saved and saved > 0.05 else text
