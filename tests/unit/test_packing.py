"""Packing and collation: packed examples must see only themselves, checked on a real tiny Llama."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from wizard.data.packing import DataCollator, pack_rows
from wizard.data.render import IGNORE_INDEX, tokenize_sft
from wizard.model_source import resolve


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))


@pytest.fixture(scope="module")
def rows(tok):
    conversations = [
        ("Who are you?", "I'm Tuna, an AI assistant fine-tuned with tune-wizard."),
        ("What is 2+2?", "4."),
        ("Name a primary colour.", "Red."),
        ("Translate 'cat' into French.", "Chat."),
        ("Write a Python expression for the square of x.", "x ** 2"),
    ]
    examples = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                 "where": f"t:{n}"} for n, (q, a) in enumerate(conversations)]
    return tokenize_sft(examples, tok)[0]


def tiny_llama(tok, attn: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=128, vocab_size=len(tok), max_position_embeddings=512)
    config._attn_implementation = attn
    # As in training: with a cache, transformers skips the packed-sequence detection (it assumes decoding).
    config.use_cache = False
    return LlamaForCausalLM(config).eval()


def test_pack_rows_fits_everything_once(rows):
    lengths = sorted(len(r["input_ids"]) for r in rows)
    limit = lengths[-1] + lengths[0] + 1  # room for the longest beside the shortest, not for three rows
    packed = pack_rows(rows, limit)
    assert 1 < len(packed) < len(rows)
    assert all(len(p["input_ids"]) <= limit for p in packed)
    assert sum(len(p["input_ids"]) for p in packed) == sum(lengths)
    starts = [i for p in packed for i, pos in enumerate(p["position_ids"]) if pos == 0]
    assert len(starts) == len(rows)
    # Every row's tokens come back as one contiguous piece with positions 0..n-1.
    pieces = []
    for p in packed:
        bounds = [i for i, pos in enumerate(p["position_ids"]) if pos == 0] + [len(p["input_ids"])]
        for a, b in zip(bounds, bounds[1:]):
            assert p["position_ids"][a:b] == list(range(b - a))
            assert p["labels"][a] == IGNORE_INDEX
            pieces.append(tuple(p["input_ids"][a:b]))
    assert sorted(pieces) == sorted(tuple(r["input_ids"]) for r in rows)
    assert pack_rows(rows, limit) == packed  # deterministic


def test_pack_rows_refuses_a_row_over_the_limit(rows):
    with pytest.raises(ValueError, match="max_length"):
        pack_rows(rows, 10)


def _segments(position_ids):
    bounds = [i for i, pos in enumerate(position_ids) if pos == 0] + [len(position_ids)]
    return list(zip(bounds, bounds[1:]))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_examples_do_not_attend_to_each_other(tok, rows, attn):
    model = tiny_llama(tok, attn)
    pack = pack_rows(rows, sum(len(r["input_ids"]) for r in rows))
    assert len(pack) == 1
    batch = DataCollator(tok.pad_token_id)(pack)
    assert "attention_mask" not in batch
    with torch.no_grad():
        packed_logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        plain_logits = model(input_ids=batch["input_ids"]).logits[0]  # without position ids: one long causal row
        for n, (a, b) in enumerate(_segments(pack[0]["position_ids"])):
            alone = model(input_ids=torch.tensor([pack[0]["input_ids"][a:b]])).logits[0]
            torch.testing.assert_close(packed_logits[a:b], alone, atol=1e-4, rtol=0)
            if n > 0:  # the check can fail: without the packed mask the later examples see the earlier ones
                assert not torch.allclose(plain_logits[a:b], alone, atol=1e-4)


def test_packed_batch_with_padding_and_the_same_loss(tok, rows):
    model = tiny_llama(tok, "sdpa")
    packs = pack_rows(rows, max(len(r["input_ids"]) for r in rows) + 20)
    batch = DataCollator(tok.pad_token_id, pad_to_multiple_of=8)(packs)
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0 and batch["position_ids"].shape == batch["input_ids"].shape
    assert batch.pop("num_real_tokens") == sum(len(p["input_ids"]) for p in packs)
    with torch.no_grad():
        out = model(**batch)
        total, count = 0.0, 0
        for k, pack in enumerate(packs):
            for a, b in _segments(pack["position_ids"]):
                ids = torch.tensor([pack["input_ids"][a:b]])
                labels = torch.tensor([pack["labels"][a:b]])
                alone = model(input_ids=ids, labels=labels)
                torch.testing.assert_close(out.logits[k, a:b], alone.logits[0], atol=1e-4, rtol=0)
                n = int((labels[0, 1:] != IGNORE_INDEX).sum())
                total += float(alone.loss) * n
                count += n
    # The packed loss is the token-weighted mean of the examples' own losses: nothing leaks across a boundary.
    assert float(out.loss) == pytest.approx(total / count, abs=1e-5)


def test_collator_pads_unpacked_rows(tok):
    eos = tok.eos_token_id
    assert tok.pad_token_id == eos
    features = [{"input_ids": [5, 6, 7, eos], "labels": [-100, 6, 7, eos]},
                {"input_ids": [8, 9], "labels": [-100, 9]}]
    batch = DataCollator(tok.pad_token_id)(features)
    assert batch["input_ids"].tolist() == [[5, 6, 7, eos], [8, 9, eos, eos]]
    assert batch["labels"].tolist() == [[-100, 6, 7, eos], [-100, 9, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert "position_ids" not in batch and batch["input_ids"].dtype == torch.long

    padded = DataCollator(0, pad_to_multiple_of=8)(features)
    assert padded["input_ids"].tolist()[1] == [8, 9, 0, 0, 0, 0, 0, 0]
    assert padded["attention_mask"].tolist()[0] == [1, 1, 1, 1, 0, 0, 0, 0]


def test_collator_pads_packed_rows_as_their_own_block():
    features = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3], "position_ids": [0, 0, 1]},
                {"input_ids": [4], "labels": [-100], "position_ids": [0]}]
    batch = DataCollator(0)(features)
    assert set(batch) == {"input_ids", "labels", "position_ids", "num_real_tokens"} and batch["num_real_tokens"] == 4
    assert batch["position_ids"].tolist() == [[0, 0, 1], [0, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [-100, -100, -100]]
    with pytest.raises(ValueError, match="mixes"):
        DataCollator(0)([features[0], {"input_ids": [1], "labels": [1]}])
