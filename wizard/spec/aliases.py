"""Names users bring from other trainers (ms-swift, LLaMA-Factory, axolotl, HF TrainingArguments), mapped to
the RunSpec field each one means, as a dotted path.

The one table behind both hints: the spec's "unknown key; did you mean ...?" (wizard.spec.describe_errors)
and `tune-wizard init --answers`' "not a question id; did you mean ...?" (wizard.init.answers, which finds
the question that sets the path). Keys are lower case.
"""
from __future__ import annotations

ALIASES: dict[str, str] = {
    # HF TrainingArguments (also ms-swift's and LLaMA-Factory's names for these)
    "learning_rate": "train.lr",
    "num_train_epochs": "train.epochs",
    "num_epochs": "train.epochs",
    "per_device_train_batch_size": "train.batch_size",
    "micro_batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.grad_accum",
    "lr_scheduler_type": "train.scheduler",
    "optim": "train.optimizer",
    "warmup": "train.warmup_ratio",
    "output": "output_dir",
    "run_name": "name",
    # LoRA
    "lora_rank": "lora.r",
    "rank": "lora.r",
    "lora_alpha": "lora.alpha",
    "alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "lora_target": "lora.target_modules",
    "lora_target_modules": "lora.target_modules",
    # data
    "max_seq_length": "data.max_length",
    "cutoff_len": "data.max_length",
    "sequence_len": "data.max_length",
    "max_len": "data.max_length",
    "val_dataset_ratio": "data.eval_split",
    "split_dataset_ratio": "data.eval_split",
    "dataset": "data.train",
    "datasets": "data.train",
    # model, task, method
    "model_name_or_path": "model.id",
    "model_id_or_path": "model.id",
    "base_model": "model.id",
    "use_hf": "model.hub",
    "train_type": "method",
    "tuner_type": "method",
    "finetuning_type": "method",
    "stage": "task",
}
