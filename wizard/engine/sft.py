"""Supervised fine-tuning, read top to bottom: tokenize with loss masks, then the HF Trainer.

The HF Trainer rather than TRL's SFTTrainer: the rows arrive already rendered with the model's chat
template and an assistant-only loss mask that also trains the end-of-turn token (TRL's assistant_only_loss
needs `{% generation %}` markers that most shipped templates lack), and packing is done here with
position_ids so examples never attend to each other. What is left for a trainer is the loop,
checkpoints, schedules and resume, which the HF Trainer does well.

Batching (train.batching, resolved by wizard.estimate.batching.plan): `tokens` makes each dataset item one
micro-batch, whole rows end to end up to the token budget (data.packing.token_batches), and the Trainer takes
one item per forward pass; `rows` pads batch_size rows. Either way the loss of an update is the mean over all
its label tokens: the model's loss takes the Trainer's num_items_in_batch (the label count of the whole update,
across gradient accumulation), so the same rows give the same gradient however they are batched.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import Trainer

from wizard.data.packing import DataCollator, pack_rows, token_batches
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


def prepare_data(spec, tokenizer, train_examples, eval_examples, events):
    """Tokenized rows (train, eval) and the training tokens in all, which the batching plan reads."""
    train_rows = prepare_rows(spec, tokenizer, train_examples, events)
    eval_rows = prepare_rows(spec, tokenizer, eval_examples, events) if eval_examples else []
    return train_rows, eval_rows, sum(len(r["input_ids"]) for r in train_rows)


class SftTrainer(Trainer):
    """The HF Trainer, fed batches that carry their real-token count (DataCollator's num_real_tokens): it is
    added to the tokens seen here, on the host, instead of the Trainer counting on the GPU and waiting for it.
    The loss is computed in chunks (wizard.engine.chunked_loss) where the model's family allows."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        from wizard.engine import chunked_loss

        # On several processes the model is wrapped (DDP, FSDP) and must be called through the wrapper, whose
        # forward prepares the gradient all-reduce (DDP) or gathers the weights (FSDP): the chunked loss, which
        # calls the decoder and the head itself, is for one process.
        if self.accelerator.unwrap_model(model) is not model or not chunked_loss.supports(model):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        loss = chunked_loss.causal_lm_loss(model, inputs, labels, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # num_items_in_batch counts the labels of every process (as the Trainer's own loss path does)
            loss = loss * self.accelerator.num_processes
        return (loss, {"loss": loss}) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.state.num_input_tokens_seen += inputs.pop("num_real_tokens", 0)
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs.pop("num_real_tokens", None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)


def build_trainer(spec, model, tokenizer, train_rows, eval_rows, args, callbacks, events, plan, attention: str):
    from wizard.engine.attention import VARLEN

    if plan.batching == "tokens":
        train_rows = token_batches(train_rows, plan.batch_tokens, spec.train.seed)
        eval_rows = token_batches(eval_rows, plan.batch_tokens, spec.train.seed) if eval_rows else eval_rows
    # On a GPU, lengths rounded up to a multiple of 64 keep the number of distinct shapes small.
    collator = DataCollator(pad_token_id=tokenizer.pad_token_id,
                            pad_to_multiple_of=64 if torch.cuda.is_available() else None,
                            boundaries=attention == VARLEN)
    return SftTrainer(model=model, args=args, train_dataset=RowDataset(train_rows),
                      eval_dataset=RowDataset(eval_rows) if eval_rows else None,
                      data_collator=collator, processing_class=tokenizer, callbacks=callbacks)
