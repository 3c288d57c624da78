"""One generation setup for chat, serve, the identity demo and dpo_eval: an answer stops at any end-of-turn
token the model's generation config names (Llama 3's <|eot_id|> is not its tokenizer's eos). Real tiny Llama."""
from __future__ import annotations

import pytest
import torch

from wizard.engine.dpo_eval import greedy_answers
from wizard.inference.generation import answer, end_of_turn_ids, generate_batch
from wizard.inference.loading import Loaded
from wizard.model_source import load_tokenizer

PROMPT = [{"role": "user", "content": "Who are you?"}]


@pytest.fixture
def loaded(tiny_model_dir) -> Loaded:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return Loaded(model, load_tokenizer(tiny_model_dir))


def test_a_second_end_of_turn_token_stops_every_generator(loaded):
    tok, model = loaded.tokenizer, loaded.model
    model.generation_config.eos_token_id = tok.eos_token_id
    babble = answer(loaded, PROMPT, max_new_tokens=8)
    assert babble.completion_tokens == 8 and babble.finish_reason == "length"  # a random model never stops
    assert greedy_answers(model, tok, [PROMPT], max_new_tokens=8) == [babble.text]
    assert generate_batch(loaded, [PROMPT], max_new_tokens=8) == [babble.text]

    # The model's first greedy token becomes a second end of turn, as <|eot_id|> is for Llama 3.
    ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    first = int(model.generate(**ids, max_new_tokens=1, do_sample=False)[0, -1])
    assert first != tok.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, first]
    assert end_of_turn_ids(loaded) == [tok.eos_token_id, first]
    stopped = answer(loaded, PROMPT, max_new_tokens=8)
    assert stopped.completion_tokens == 1 and stopped.finish_reason == "stop"
    assert greedy_answers(model, tok, [PROMPT], max_new_tokens=8) == [stopped.text]
    assert generate_batch(loaded, [PROMPT, PROMPT], max_new_tokens=8) == [stopped.text, stopped.text]
