"""Spec -> transformers TrainingArguments, and the gradient-checkpointing decision."""
from __future__ import annotations

from pathlib import Path

import torch

from wizard import run_folder as rf


def batching_plan(spec, model_path: Path | None = None, dataset_tokens: int | None = None, saved: dict | None = None,
                  world_size: int = 1, strategy: str = "single"):
    """The spec's batching with its `auto`s resolved (wizard.estimate.batching.plan): on a GPU the memory estimate
    of this model picks the token budget (per GPU, split over the GPUs with fsdp). `saved` is the plan a resumed run
    started with (run_info.json): a run keeps its batches, so its steps and schedule stay those of the checkpoint,
    whatever GPU it resumes on."""
    from wizard.estimate.batching import Plan

    if saved:
        why = saved.get("why", "")
        return Plan(saved["batching"], saved["batch_tokens"], saved["grad_accum"], saved.get("checkpointing"),
                    why if why.startswith("as the run started") else f"as the run started: {why}",
                    saved.get("processes", 1))
    from wizard.estimate import plan_for_spec, shape_from_config

    hardware, shape = None, None
    if torch.cuda.is_available():
        from wizard.hardware import detect

        hardware = detect()
        if model_path is not None and (Path(model_path) / "config.json").is_file():
            shape = shape_from_config(Path(model_path) / "config.json")
    return plan_for_spec(spec, hardware, shape, device="cuda" if hardware is not None else "cpu",
                         dataset_tokens=dataset_tokens, processes=world_size,
                         shards=world_size if strategy == "fsdp" else 1)


def model_shape(model_path: Path | None):
    """The model's shape from its config.json (None for a .gguf file or a folder without one)."""
    from wizard.estimate import shape_from_config

    config = Path(model_path) / "config.json" if model_path is not None else None
    return shape_from_config(config) if config is not None and config.is_file() else None


def choose_strategy(spec, model_path: Path | None, world_size: int) -> tuple[str, str]:
    """DDP or FSDP for this run (wizard.estimate.strategy), from this GPU's free memory."""
    from wizard.estimate.strategy import choose
    from wizard.hardware import detect

    if world_size <= 1 and spec.distributed.strategy != "fsdp":
        return "single", "one process"
    hardware = detect() if torch.cuda.is_available() else None
    return choose(spec, hardware, model_shape(model_path) if hardware is not None else None, world_size)


def choose_gradient_checkpointing(spec, model_path: Path, plan=None) -> tuple[bool, str]:
    """`auto`: off when the memory estimate without it fits the GPU's free memory with headroom, since
    recomputing every layer costs about a third of the step time; on otherwise. With batching tokens the token
    budget is chosen with it (the plan says which). The rule itself lives in wizard.estimate, so
    `tune-wizard estimate`, the wizard and the engine decide alike."""
    mode = spec.train.gradient_checkpointing
    if mode != "auto":
        return mode == "on", "set in the spec"
    if not torch.cuda.is_available():
        return False, "auto: CPU run, memory is not the limit"
    if plan is not None and plan.checkpointing is not None:
        return plan.checkpointing, f"auto: {plan.why}"
    from wizard.estimate import estimate_for_spec, shape_from_config
    from wizard.hardware import detect

    overrides = {"max_length": plan.batch_tokens, "batch_size": 1, "packed": True} if (
        plan is not None and plan.batching == "tokens") else {}
    b = estimate_for_spec(spec, detect(), shape=shape_from_config(Path(model_path) / "config.json"), **overrides)
    return bool(b.inputs["grad_ckpt"]), b.inputs["grad_ckpt_reason"]


def build_args(spec, run_dir: Path, precision, gradient_checkpointing: bool, has_eval: bool, plan=None,
               model=None, world_size: int = 1, strategy: str = "single"):
    """plan: the resolved batching (batching_plan); None resolves it here as on a CPU. strategy (with world_size
    processes): ddp or fsdp, which the Trainer (accelerate) sets up from these arguments; model: the model, whose
    decoder layers are FSDP's units."""
    from transformers import TrainingArguments

    t = spec.train
    plan = plan or batching_plan(spec)
    # batching tokens: each dataset item is already a whole micro-batch (wizard.data.packing.token_batches).
    per_device = 1 if plan.batching == "tokens" else t.batch_size
    eval_steps = t.eval_steps or t.save_steps
    return TrainingArguments(
        output_dir=str(Path(run_dir) / rf.CHECKPOINTS),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=plan.grad_accum,
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
        # Evaluation reports the loss; without this the Trainer would also gather every eval token's logits.
        prediction_loss_only=True,
        bf16=precision.trainer_bf16,
        fp16=precision.trainer_fp16,
        use_cpu=not torch.cuda.is_available(),
        # Checkpointing is switched on by the loader (non-reentrant) when chosen; the Trainer's own
        # switch stays at its default (off).
        # SFT batches carry their real-token count (SftTrainer adds it on the host); TRL's DPO batches do not,
        # so the Trainer counts those (one GPU sync per forward pass).
        include_num_input_tokens_seen="no" if spec.task == "sft" else "non_padding",
        remove_unused_columns=False,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
        save_only_model=False,
        # DDP: every trainable parameter gets a gradient each step (the adapters, or all weights), so DDP need not
        # search the graph for unused ones (the Trainer's default for a PEFT model would, every step).
        ddp_find_unused_parameters=False if world_size > 1 else None,
        **(fsdp_arguments(model) if strategy == "fsdp" else {}),
    )


def fsdp_arguments(model) -> dict:
    """FSDP2 through accelerate: each decoder layer a unit (the model's own `_no_split_modules`), the adapters'
    frozen and trainable weights side by side (use_orig_params), a whole state dict gathered on rank 0 when a
    checkpoint or the adapter is saved (so the files are those of a one-GPU run: chat, export and serve take
    them as they are)."""
    layers = list(getattr(model, "_no_split_modules", None) or [])
    base = getattr(model, "base_model", None)
    while not layers and base is not None and base is not model:  # a PEFT model: its base model knows
        layers = list(getattr(base, "_no_split_modules", None) or [])
        model, base = base, getattr(base, "model", None)
    return {"fsdp": "full_shard auto_wrap",
            "fsdp_config": {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                            "transformer_layer_cls_to_wrap": layers, "state_dict_type": "FULL_STATE_DICT",
                            "use_orig_params": True, "cpu_ram_efficient_loading": False,
                            "activation_checkpointing": False, "reshard_after_forward": True}}
