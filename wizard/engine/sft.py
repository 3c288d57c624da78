"""Supervised fine-tuning, read top to bottom: tokenize with loss masks, then the HF Trainer.

The HF Trainer rather than TRL's SFTTrainer: the rows arrive already rendered with the model's chat
template and an assistant-only loss mask that also trains the end-of-turn token (TRL's assistant_only_loss
needs `{% generation %}` markers that most shipped templates lack), and packing is done here with
position_ids so examples never attend to each other. What is left for a trainer is the loop,
checkpoints, schedules and resume, which the HF Trainer does well.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import Trainer

from wizard.data.packing import DataCollator, pack_rows
from wizard.data.render import tokenize_sft
from wizard.errors import DataError


class RowDataset(torch.utils.data.Dataset):
    def __init__(self, rows: Sequence[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def prepare_rows(spec, tokenizer, examples, events) -> list[dict]:
    rows, stats = tokenize_sft(examples, tokenizer, max_length=spec.data.max_length,
                               overflow=spec.data.overflow, assistant_only_loss=spec.data.assistant_only_loss)
    if stats.truncated or stats.dropped:
        where = ", ".join(stats.over_max_examples[:3])
        events(f"{stats.truncated} rows truncated and {stats.dropped} dropped at max_length "
               f"{spec.data.max_length} (e.g. {where}); raise data.max_length or set data.overflow", "warning")
    if not rows:
        raise DataError("no training rows left after tokenization",
                        hint=f"every row was over data.max_length={spec.data.max_length}; raise it or use "
                             "data.overflow: truncate")
    if spec.data.packing:
        rows = pack_rows(rows, spec.data.max_length)
    return rows


def check_environment() -> None:
    """Nothing to check beyond the pinned dependencies: SFT uses only the HF Trainer's public API."""


def build_trainer(spec, model, tokenizer, train_examples, eval_examples, args, callbacks, events):
    train_rows = prepare_rows(spec, tokenizer, train_examples, events)
    eval_rows = prepare_rows(spec, tokenizer, eval_examples, events) if eval_examples else None
    collator = DataCollator(pad_token_id=tokenizer.pad_token_id,
                            pad_to_multiple_of=8 if torch.cuda.is_available() else None)
    return Trainer(model=model, args=args, train_dataset=RowDataset(train_rows),
                   eval_dataset=RowDataset(eval_rows) if eval_rows else None,
                   data_collator=collator, processing_class=tokenizer, callbacks=callbacks)
