"""Packing several short rows into one sequence, and the collator that batches rows for the trainer.

Packed examples must not attend to each other. Rather than a custom attention mask, each packed row carries
position_ids that restart at 0 for every example and no attention_mask: transformers' masking utilities
then find the example boundaries from the position_ids (find_packed_sequence_indices) and build a
block-diagonal causal mask for sdpa and eager attention, and flash-attention reads the same boundaries.
The model must run with use_cache=False (model.config.use_cache = False): with a cache transformers assumes
it is decoding, skips that detection, and packed examples silently attend to each other.
"""
from __future__ import annotations

import bisect
import random

import torch

from wizard.data.render import IGNORE_INDEX


def best_fit(sizes: list[int], order: list[int], capacity: int) -> list[list[int]]:
    """Indices grouped into bins of at most `capacity`, taking them in `order`: each goes to the fullest bin
    that still has room. Deterministic (ties keep the order); empty items are left out."""
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted, for bins that can still take an item
    for i in order:
        size = sizes[i]
        if size > capacity:
            raise ValueError(f"row {i} has {size} tokens, more than {capacity}; "
                             "render with tokenize_sft(max_length=...) first")
        if size == 0:
            continue
        k = bisect.bisect_left(free, (size, -1))
        if k < len(free):
            room, b = free.pop(k)
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if room - size > 0:
            bisect.insort(free, (room - size, b))
    return bins


def pack_rows(rows: list[dict], max_length: int) -> list[dict]:
    """Pack {"input_ids", "labels"} rows into sequences of at most max_length tokens (`data.packing`).

    Best-fit decreasing: longest rows first, which leaves the least padding.
    """
    sizes = [len(r["input_ids"]) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: -sizes[i])
    return [join_rows([rows[i] for i in members]) for members in best_fit(sizes, order, max_length)]


def token_batches(rows: list[dict], budget: int, seed: int) -> list[dict]:
    """Micro-batches for `batching: tokens`: whole rows, shuffled with the seed, best-fit into `budget` tokens
    each, every micro-batch one unpadded sequence.

    Shuffled rather than sorted, so that a micro-batch mixes long and short rows as a random batch would. The
    trainer then shuffles the micro-batches each epoch (with the same seed), so steps per epoch, the schedule and
    --resume are as exact as with rows.
    """
    sizes = [len(r["input_ids"]) for r in rows]
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [join_rows([rows[i] for i in sorted(members)]) for members in best_fit(sizes, order, budget)]


def join_rows(members: list[dict]) -> dict:
    """Rows end to end as one sequence, position_ids restarting at each row. A row that is itself packed keeps
    its own position_ids."""
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for row in members:
        input_ids += row["input_ids"]
        # The first token of a row would be predicted from the end of the previous one: unlabelled, as an
        # unpadded row's first label is never used either.
        labels += [IGNORE_INDEX] + list(row["labels"][1:])
        position_ids += row.get("position_ids") or range(len(row["input_ids"]))
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


class DataCollator:
    """Pads a batch of rows on the right: input_ids with the pad id, labels with -100.

    Unpadded rows get an attention_mask. Packed rows (with position_ids) get none, so that the model builds
    the block-diagonal mask from the position_ids; their padding is a block of its own (positions from 0),
    which no real token attends to. Labels are never derived from input_ids, so a pad id equal to the eos
    leaves the trained eos alone.

    boundaries: also hand the model each sequence's start (cu_seq_lens_q/k, max_length_q/k), which a varlen
    attention kernel reads instead of a mask; only for one packed sequence per batch (batching tokens).
    Every batch carries `num_real_tokens`, its non-padding token count, counted here on the host so that the
    trainer never waits on the GPU to count tokens (SftTrainer pops it before the forward pass).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None, boundaries: bool = False):
        if pad_token_id is None:
            raise ValueError("the tokenizer has no pad token id; set tokenizer.pad_token (eos will do)")
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.boundaries = boundaries

    def __call__(self, features: list[dict]) -> dict:
        packed = "position_ids" in features[0]
        if any(("position_ids" in f) != packed for f in features):
            raise ValueError("a batch mixes packed and unpacked rows")
        width = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch: dict[str, list] = {"input_ids": [], "labels": []}
        batch["position_ids" if packed else "attention_mask"] = []
        for f in features:
            n = len(f["input_ids"])
            pad = width - n
            batch["input_ids"].append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            batch["labels"].append(list(f["labels"]) + [IGNORE_INDEX] * pad)
            if packed:
                batch["position_ids"].append(list(f["position_ids"]) + list(range(pad)))
            else:
                batch["attention_mask"].append([1] * n + [0] * pad)
        out: dict = {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
        out["num_real_tokens"] = sum(len(f["input_ids"]) for f in features)
        if self.boundaries:
            if not packed or len(features) != 1:
                raise ValueError("sequence boundaries need one packed sequence per batch (batching tokens)")
            starts = [i for i, p in enumerate(batch["position_ids"][0]) if p == 0] + [width]
            lengths = [b - a for a, b in zip(starts, starts[1:])]
            cu = torch.tensor(starts, dtype=torch.int32)
            out.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max(lengths), max_length_k=max(lengths))
        return out
