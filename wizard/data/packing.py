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

import torch

from wizard.data.render import IGNORE_INDEX


def pack_rows(rows: list[dict], max_length: int) -> list[dict]:
    """Pack {"input_ids", "labels"} rows into sequences of at most max_length tokens.

    Best-fit decreasing: longest rows first, each into the fullest sequence that still has room. It is
    deterministic (ties keep the input order) and leaves little padding.
    """
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted, for bins that can still take a row
    for i in order:
        size = len(rows[i]["input_ids"])
        if size > max_length:
            raise ValueError(f"row {i} has {size} tokens, more than max_length {max_length}; "
                             "render with tokenize_sft(max_length=...) first")
        if size == 0:
            continue
        k = bisect.bisect_left(free, (size, -1))
        if k < len(free):
            room, b = free.pop(k)
        else:
            room, b = max_length, len(bins)
            bins.append([])
        bins[b].append(i)
        if room - size > 0:
            bisect.insort(free, (room - size, b))
    return [_join([rows[i] for i in members]) for members in bins]


def _join(members: list[dict]) -> dict:
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for row in members:
        input_ids += row["input_ids"]
        # The first token of an example would be predicted from the end of the previous one: mask it, as an
        # unpacked row's first label is never used either.
        labels += [IGNORE_INDEX] + list(row["labels"][1:])
        position_ids += range(len(row["input_ids"]))
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


class DataCollator:
    """Pads a batch of rows on the right: input_ids with the pad id, labels with -100.

    Unpacked rows get an attention_mask. Packed rows (with position_ids) get none, so that the model builds
    the block-diagonal mask from the position_ids; their padding is a block of its own (positions from 0),
    which no real token attends to. Labels are never derived from input_ids, so a pad id equal to the eos
    leaves the trained eos alone.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        if pad_token_id is None:
            raise ValueError("the tokenizer has no pad token id; set tokenizer.pad_token (eos will do)")
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
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
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
