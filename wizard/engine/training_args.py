"""Spec -> transformers TrainingArguments, and the gradient-checkpointing decision."""
from __future__ import annotations

from pathlib import Path

import torch

from wizard import run_folder as rf


def choose_gradient_checkpointing(spec, model_path: Path) -> tuple[bool, str]:
    """`auto`: off when the memory estimate without it fits the GPU's free memory with headroom, since
    recomputing every layer costs about a third of the step time; on otherwise. The rule itself lives in
    wizard.estimate, so `tune-wizard estimate`, the wizard and the engine decide alike."""
    mode = spec.train.gradient_checkpointing
    if mode != "auto":
        return mode == "on", "set in the spec"
    if not torch.cuda.is_available():
        return False, "auto: CPU run, memory is not the limit"
    from wizard.estimate import estimate_for_spec, shape_from_config
    from wizard.hardware import detect

    b = estimate_for_spec(spec, detect(), shape=shape_from_config(Path(model_path) / "config.json"))
    return bool(b.inputs["grad_ckpt"]), b.inputs["grad_ckpt_reason"]


def build_args(spec, run_dir: Path, precision, gradient_checkpointing: bool, has_eval: bool):
    from transformers import TrainingArguments

    t = spec.train
    eval_steps = t.eval_steps or t.save_steps
    return TrainingArguments(
        output_dir=str(Path(run_dir) / rf.CHECKPOINTS),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,  # transformers 5 reads a float < 1 as a ratio of the total steps
        optim=t.optimizer,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        bf16=precision.trainer_bf16,
        fp16=precision.trainer_fp16,
        use_cpu=not torch.cuda.is_available(),
        # Checkpointing is switched on by the loader (non-reentrant) when chosen; the Trainer's own
        # switch stays at its default (off).
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
        save_only_model=False,
    )
