"""Batching by tokens: whole rows end to end, no row attending to another, and an update's loss and gradient
independent of how its rows were batched. Real tiny models built from a config, the engine's own trainer."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, TrainerCallback

from wizard.data.packing import DataCollator, token_batches
from wizard.data.render import IGNORE_INDEX, tokenize_sft
from wizard.engine import sft
from wizard.engine.loader import choose_precision
from wizard.engine.training_args import batching_plan, build_args
from wizard.model_source import resolve
from wizard.spec import from_dict


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))


@pytest.fixture(scope="module")
def rows(tok):
    """24 chat rows of uneven length (a few tokens of answer to a few dozen)."""
    examples = []
    for n in range(24):
        answer = " ".join(["tuna"] * (1 + (n * 7) % 23)) + f" {n}."
        examples.append({"messages": [{"role": "user", "content": f"Question number {n}: say it {n % 5} times."},
                                      {"role": "assistant", "content": answer}], "where": f"t:{n}"})
    return tokenize_sft(examples, tok)[0]


def tiny_llama(vocab: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=128, vocab_size=vocab, max_position_embeddings=1024,
                         attn_implementation="sdpa", use_cache=False)
    return LlamaForCausalLM(config)


def segments(position_ids: list[int]) -> list[tuple[int, int]]:
    bounds = [i for i, p in enumerate(position_ids) if p == 0] + [len(position_ids)]
    return list(zip(bounds, bounds[1:]))


def test_token_batches_hold_every_row_once_whole_and_within_the_budget(rows):
    budget = 5 * max(len(r["input_ids"]) for r in rows)
    batches = token_batches(rows, budget, seed=1)
    total = sum(len(r["input_ids"]) for r in rows)
    assert all(len(b["input_ids"]) <= budget for b in batches)
    assert len(batches) <= -(-total // budget) + 1  # best fit leaves little room unused
    pieces = sorted(tuple(b["input_ids"][a:e]) for b in batches for a, e in segments(b["position_ids"]))
    assert pieces == sorted(tuple(r["input_ids"]) for r in rows)
    for b in batches:
        for a, e in segments(b["position_ids"]):
            assert b["position_ids"][a:e] == list(range(e - a)) and b["labels"][a] == IGNORE_INDEX
    assert token_batches(rows, budget, seed=1) == batches                   # the seed decides the grouping
    assert token_batches(rows, budget, seed=2) != batches
    with pytest.raises(ValueError, match="more than"):
        token_batches(rows, 8, seed=1)


def test_boundaries_for_the_varlen_kernel_and_the_real_token_count():
    rows = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4, 5], "labels": [-100, 5]}]
    [batch] = token_batches(rows, 8, seed=0)
    out = DataCollator(0, pad_to_multiple_of=8, boundaries=True)([batch])
    assert out["input_ids"].shape == (1, 8) and out["num_real_tokens"] == 5
    first = 3 if batch["input_ids"][0] == 1 else 2
    assert out["cu_seq_lens_q"].tolist() == [0, first, 5, 8] and out["cu_seq_lens_q"].dtype == torch.int32
    assert out["max_length_q"] == 3 and out["labels"][0, 5:].tolist() == [-100] * 3  # padding: its own row
    with pytest.raises(ValueError, match="one packed sequence"):
        DataCollator(0, boundaries=True)(rows)


def row_losses(model, batch: dict) -> list[float]:
    """Per-row mean loss over each row's label tokens, from one forward pass of a collated batch."""
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
                       ).logits.float()
    out = []
    for k in range(batch["input_ids"].shape[0]):
        pos = batch["position_ids"][k].tolist() if "position_ids" in batch else None
        spans = segments(pos) if pos else [(0, int(batch["attention_mask"][k].sum()))]
        for a, e in spans:
            labels = batch["labels"][k, a + 1:e]
            if (labels != IGNORE_INDEX).any():
                out.append(float(torch.nn.functional.cross_entropy(logits[k, a:e - 1], labels,
                                                                   ignore_index=IGNORE_INDEX)))
    return out


def test_rows_concatenated_by_tokens_give_the_losses_of_rows_padded_one_per_batch(tok, rows):
    model = tiny_llama(len(tok)).eval()
    padded = DataCollator(tok.pad_token_id)
    alone = sorted(row_losses(model, padded([r])) for r in rows)
    # and padded together, to the longest row of the batch
    together = sorted(row_losses(model, padded(rows)))
    concatenated = sorted(x for b in token_batches(rows, 512, seed=3) for x in row_losses(model, padded([b])))
    flat = sorted(x for group in alone for x in group)
    assert len(concatenated) == len(flat) == len(rows)
    torch.testing.assert_close(torch.tensor(concatenated), torch.tensor(flat), rtol=1e-4, atol=0)
    torch.testing.assert_close(torch.tensor(together), torch.tensor(flat), rtol=1e-4, atol=0)


class Grads(TrainerCallback):
    """The gradient the optimizer is about to apply, and the loss logged for that update."""

    def __init__(self):
        self.grads, self.losses = None, []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])


def one_update(tmp_path, tok, rows, train: dict) -> Grads:
    """One optimizer update over all ROWS through the engine's SFT trainer, batched as TRAIN says."""
    spec = from_dict({"model": {"id": "unused"}, "method": "full", "data": {"train": "unused.jsonl", "max_length": 256},
                      "train": {"max_steps": 1, "lr": 1e-3, "max_grad_norm": 0, "logging_steps": 1,
                                "precision": "fp32", **train}})
    plan = batching_plan(spec)
    model = tiny_llama(len(tok))
    args = build_args(spec, tmp_path / str(len(list(tmp_path.iterdir()))), choose_precision("fp32", "full"), False,
                      has_eval=False, plan=plan)
    grads = Grads()
    trainer = sft.build_trainer(spec, model, tok, rows, [], args, [grads], lambda *a: None, plan, "sdpa")
    assert len(trainer.get_train_dataloader()) == plan.grad_accum, "one update must hold every row"
    trainer.train()
    return grads


def test_an_updates_loss_and_gradient_do_not_depend_on_how_its_rows_were_batched(tmp_path, tok, rows):
    total = sum(len(r["input_ids"]) for r in rows)
    n_batches = len(token_batches(rows, 256, seed=42))
    by_row = one_update(tmp_path, tok, rows, {"batching": "rows", "batch_size": 1, "grad_accum": len(rows)})
    by_four = one_update(tmp_path, tok, rows, {"batching": "rows", "batch_size": 4, "grad_accum": len(rows) // 4})
    by_tokens = one_update(tmp_path, tok, rows, {"batching": "tokens", "batch_tokens": 256, "grad_accum": n_batches})
    one_pass = one_update(tmp_path, tok, rows, {"batching": "tokens", "batch_tokens": total, "grad_accum": 1})
    assert n_batches > 2
    for other in (by_four, by_tokens, one_pass):
        assert other.losses[0] == pytest.approx(by_row.losses[0], rel=1e-4)
        assert other.grads.keys() == by_row.grads.keys()
        for name, g in by_row.grads.items():
            torch.testing.assert_close(other.grads[name], g, rtol=1e-4, atol=1e-4 * float(g.abs().max()))


def test_varlen_is_not_chosen_where_it_would_change_the_attention():
    from wizard.engine import attention

    gemma2 = {"model_type": "gemma2", "attn_logit_softcapping": 50.0, "sliding_window": 4096}
    assert attention.unsupported(gemma2, 2048) == "the model soft-caps its attention scores"
    mistral = {"model_type": "mistral", "sliding_window": 4096}
    assert attention.unsupported(mistral, 2048) is None      # no row is longer than the window
    assert "sliding window (4096 tokens)" in attention.unsupported(mistral, 8192)
    qwen2 = {"model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": False}
    assert attention.unsupported(qwen2, 8192) is None
    # On any machine: a model it would be wrong for gets sdpa, saying why; asking for varlen anyway is refused
    # (here for the missing GPU or for the model, whichever is checked first).
    name, why = attention.choose("auto", "tokens", "bf16", gemma2, 2048)
    assert name == "sdpa" and "soft-caps" in why
    with pytest.raises(ValueError, match="train.attention: varlen"):
        attention.choose("varlen", "tokens", "bf16", gemma2, 2048)
    with pytest.raises(ValueError, match="needs train.batching: tokens"):
        attention.choose("varlen", "rows", "bf16", {}, 2048)
