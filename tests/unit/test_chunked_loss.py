"""The chunked SFT loss equals the model's own loss and gradient, on real tiny models built from a config."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma2Config, LlamaConfig

from wizard.engine import chunked_loss
from wizard.estimate.memory import LOSS_CHUNK_TOKENS

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=64, vocab_size=300, max_position_embeddings=4096, use_cache=False)


def model_of(family: str):
    torch.manual_seed(0)
    config = (Gemma2Config(**SMALL, head_dim=8, final_logit_softcapping=5.0, attn_implementation="eager")
              if family == "gemma2" else LlamaConfig(**SMALL, attn_implementation="sdpa"))
    return AutoModelForCausalLM.from_config(config)


def batch(tokens: int):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, SMALL["vocab_size"], (1, tokens), generator=g)
    rows = [tokens // 3, tokens // 3, tokens - 2 * (tokens // 3)]
    pos = torch.cat([torch.arange(n) for n in rows]).unsqueeze(0)
    labels = ids.clone()
    labels[0, : tokens // 5] = -100          # a prompt
    labels[0, rows[0]] = -100                # each row's first token
    return {"input_ids": ids, "position_ids": pos}, labels


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_chunked_loss_and_gradient_equal_the_models_own(family):
    model = model_of(family)
    assert chunked_loss.supports(model)
    inputs, labels = batch(2 * LOSS_CHUNK_TOKENS + 300)   # three chunks, the last one partial
    own = model(**inputs, labels=labels).loss
    own.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    mine = chunked_loss.causal_lm_loss(model, inputs, labels)
    mine.backward()
    torch.testing.assert_close(mine, own, rtol=1e-5, atol=0)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], rtol=1e-4, atol=1e-7, msg=n)
    # num_items_in_batch (an update's label count across accumulation) divides the sum instead
    n_labels = int((labels[0, 1:] != -100).sum())
    with torch.no_grad():
        torch.testing.assert_close(chunked_loss.causal_lm_loss(model, inputs, labels, 2 * n_labels), own.detach() / 2,
                                   rtol=1e-5, atol=0)


def test_families_whose_loss_is_not_head_then_cross_entropy_keep_their_own():
    from peft import LoraConfig, get_peft_model

    assert chunked_loss.supports(get_peft_model(model_of("llama"), LoraConfig(target_modules=["q_proj"])))
    # an adapter on the output head: the plain head product would skip it
    on_head = get_peft_model(model_of("llama"), LoraConfig(target_modules=["q_proj", "lm_head"]))
    assert not chunked_loss.supports(on_head)
    torch.manual_seed(0)
    moe = AutoModelForCausalLM.from_config(
        __import__("transformers").MixtralConfig(**SMALL, num_local_experts=2, num_experts_per_tok=1))
    assert not chunked_loss.supports(moe)  # its loss adds the router's
