"""Rendering conversations with the bundled model's real tokenizer: what is trained, truncation, fallbacks."""
from __future__ import annotations

import copy
import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from wizard.catalog import recipes_dir
from wizard.data.render import IGNORE_INDEX, common_prefix, ensure_chat_template, tokenize_sft
from wizard.errors import DataError
from wizard.model_source import resolve


@pytest.fixture(scope="module")
def base_tokenizer():
    return AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))


@pytest.fixture
def tok(base_tokenizer):
    return copy.deepcopy(base_tokenizer)


def conv(*turns, system=None, where="t.jsonl:1"):
    messages = [{"role": "system", "content": system}] if system else []
    for n, text in enumerate(turns):
        messages.append({"role": "user" if n % 2 == 0 else "assistant", "content": text})
    return {"messages": messages, "where": where}


def trained_runs(tokenizer, row) -> list[str]:
    """Decode each contiguous run of labelled tokens."""
    runs, current = [], []
    for token, label in zip(row["input_ids"], row["labels"]):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


def test_single_turn_trains_exactly_the_answer_and_end_of_turn(tok):
    rows, stats = tokenize_sft([conv("Who are you?", "I'm Tuna, an AI assistant.")], tok)
    assert trained_runs(tok, rows[0]) == ["I'm Tuna, an AI assistant.<|im_end|>"]
    # The template's default system prompt is rendered but not trained.
    assert "named SmolLM" in tok.decode(rows[0]["input_ids"])
    assert stats.rows_in == stats.rows_out == 1
    assert stats.tokens == len(rows[0]["input_ids"]) == stats.longest
    assert stats.trained_tokens == sum(label != IGNORE_INDEX for label in rows[0]["labels"])


def test_multi_turn_with_system_prompt(tok):
    example = conv("hi", "Hello! How can I help?", "What is 2+2?", "2 + 2 = 4.", "Say hello", "hello",
                   system="Be brief.")
    rows, _ = tokenize_sft([example], tok)
    assert trained_runs(tok, rows[0]) == ["Hello! How can I help?<|im_end|>", "2 + 2 = 4.<|im_end|>",
                                          "hello<|im_end|>"]
    assert "SmolLM" not in tok.decode(rows[0]["input_ids"])


def test_ids_match_the_template_and_bos_is_not_doubled(tok):
    example = conv("Who made you?", "The tune-wizard project.")
    rows, _ = tokenize_sft([example], tok)
    expected = tok.apply_chat_template(example["messages"], tokenize=True, return_dict=True)["input_ids"]
    assert rows[0]["input_ids"] == list(expected)
    assert rows[0]["input_ids"][0] == tok.bos_token_id and rows[0]["input_ids"][1] != tok.bos_token_id


def test_eos_equal_to_pad_is_still_trained(tok):
    assert tok.pad_token_id == tok.eos_token_id
    rows, _ = tokenize_sft([conv("Q", "A.")], tok)
    labels = rows[0]["labels"]
    eos_positions = [i for i, t in enumerate(rows[0]["input_ids"]) if t == tok.eos_token_id]
    # The system and user turns' <|im_end|> are masked, the assistant's is trained.
    assert [labels[i] for i in eos_positions] == [IGNORE_INDEX, IGNORE_INDEX, tok.eos_token_id]


def test_full_loss_labels_everything(tok):
    rows, _ = tokenize_sft([conv("Q", "A.")], tok, assistant_only_loss=False)
    assert rows[0]["labels"] == rows[0]["input_ids"]


def test_template_that_trims_content(tok):
    tok.chat_template = tok.chat_template.replace("message['content']", "message['content'] | trim")
    rows, _ = tokenize_sft([conv("  Hi  ", "  Hello there.  \n")], tok)
    assert trained_runs(tok, rows[0]) == ["Hello there.<|im_end|>"]


def test_template_whose_prefix_never_matches_falls_back_to_the_content(tok):
    # A system line that counts the messages renders differently for every prefix of the conversation.
    tok.chat_template = (
        "{{ '<|im_start|>system\\n' + (messages | length | string) + ' turns<|im_end|>\\n' }}"
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    rows, _ = tokenize_sft([conv("Say hello", "hello", "Say bye", "bye")], tok)
    assert trained_runs(tok, rows[0]) == ["hello<|im_end|>", "bye<|im_end|>"]


def test_template_without_end_of_turn_gets_an_eos(tok):
    tok.chat_template = ("{% for m in messages %}{{ m['role'] + ':\\n' + m['content'] + '\\n' }}{% endfor %}"
                         "{% if add_generation_prompt %}{{ 'assistant:\\n' }}{% endif %}")
    rows, _ = tokenize_sft([conv("Hi", "Hello.")], tok)
    assert rows[0]["input_ids"][-1] == rows[0]["labels"][-1] == tok.eos_token_id
    assert trained_runs(tok, rows[0]) == ["Hello.\n<|im_end|>"]


def test_truncate_keeps_the_start(tok):
    long_answer = " ".join(["word"] * 100)
    rows, stats = tokenize_sft([conv("Q", long_answer, where="f.jsonl:7")], tok, max_length=60)
    assert len(rows[0]["input_ids"]) == 60
    assert stats.truncated == 1 and stats.dropped == 0 and stats.longest > 60
    assert stats.over_max_examples == ["f.jsonl:7"]
    assert trained_runs(tok, rows[0])[0].startswith("word word")
    assert rows[0]["labels"][-1] != IGNORE_INDEX  # cut inside the answer, no end-of-turn


def test_drop_policy_and_counts(tok):
    short = conv("Q", "A.", where="f.jsonl:1")
    longs = [conv("Q", " ".join(["word"] * 100), where=f"f.jsonl:{n}") for n in range(2, 9)]
    rows, stats = tokenize_sft([short] + longs, tok, max_length=60, overflow="drop")
    assert len(rows) == stats.rows_out == 1 and stats.rows_in == 8
    assert stats.dropped == 7 and stats.truncated == 0
    assert stats.over_max_examples == [f"f.jsonl:{n}" for n in range(2, 7)]  # the first five
    assert "7 dropped" in stats.summary(60)


def test_truncation_that_cuts_every_answer_drops_the_row(tok):
    example = conv(" ".join(["question"] * 100), "A.", where="f.jsonl:3")
    rows, stats = tokenize_sft([example], tok, max_length=60, overflow="truncate")
    assert rows == [] and stats.dropped == 1 and stats.truncated == 0


def test_row_without_assistant_turn_is_an_error(tok):
    with pytest.raises(DataError) as err:
        tokenize_sft([{"messages": [{"role": "user", "content": "hi"}], "where": "f.jsonl:4"}], tok)
    assert "f.jsonl:4" in str(err.value)


def test_template_that_refuses_a_conversation_names_the_row(tok):
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}"
                         "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}")
    with pytest.raises(DataError) as err:
        tokenize_sft([conv("Q", "A"), conv("Q", "A", system="Be brief.", where="f.jsonl:9")], tok)
    assert err.value.problems == ["f.jsonl:9: the model's chat template refuses this conversation: "
                                  "System role not supported"]
    assert "system role" in err.value.hint


def test_fallback_chatml_on_a_tokenizer_with_chatml_tokens(tok):
    tok.chat_template = None
    warning = ensure_chat_template(tok)
    assert warning and "fallback" in warning
    assert ensure_chat_template(tok) is None  # now it has one
    rows, _ = tokenize_sft([conv("Who are you?", "Tuna.")], tok)
    assert tok.decode(rows[0]["input_ids"]).startswith("<|im_start|>user\nWho are you?<|im_end|>")
    assert trained_runs(tok, rows[0]) == ["Tuna.<|im_end|>"]


def _word_tokenizer(eos: str | None) -> PreTrainedTokenizerFast:
    words = ["[UNK]", "hello", "there", "hi", "user", "assistant", "|", "<", ">", "_", "im", "start", "\n"]
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    extra = {"eos_token": eos} if eos else {}
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", **extra)


def test_fallback_uses_the_existing_eos_when_chatml_tokens_are_missing():
    tok = _word_tokenizer("</s>")
    size = len(tok)
    warning = ensure_chat_template(tok)
    assert "'</s>'" in warning and len(tok) == size  # nothing added, no embedding resize needed
    rows, _ = tokenize_sft([conv("hi", "hello there")], tok)
    trained = [t for t, label in zip(rows[0]["input_ids"], rows[0]["labels"]) if label != IGNORE_INDEX]
    assert trained == tok("hello there", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def test_fallback_adds_an_end_of_turn_when_there_is_no_eos():
    tok = _word_tokenizer(None)
    size = len(tok)
    warning = ensure_chat_template(tok)
    assert "<|im_end|> was added" in warning and len(tok) == size + 1
    rows, _ = tokenize_sft([conv("hi", "hello")], tok)
    trained = [t for t, label in zip(rows[0]["input_ids"], rows[0]["labels"]) if label != IGNORE_INDEX]
    assert trained == [tok.convert_tokens_to_ids("hello"), tok.convert_tokens_to_ids("<|im_end|>")]


def test_no_template_is_refused_before_rendering(tok):
    tok.chat_template = None
    with pytest.raises(ValueError, match="ensure_chat_template"):
        tokenize_sft([conv("Q", "A")], tok)


class _NoOffsets:
    """The real tokenizer, seen as one without character offsets (like Python and Mistral backends)."""

    is_fast = False

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __call__(self, *args, **kwargs):
        assert not kwargs.get("return_offsets_mapping")
        return self._inner(*args, **kwargs)


def test_tokenizer_without_offsets_gets_the_same_rows(tok):
    examples = [conv("hi", "Hello! How can I help?", "What is 2+2?", "2 + 2 = 4.", system="Be brief."),
                conv("Who are you?", "I'm Tuna.")]
    with_offsets, _ = tokenize_sft(examples, tok)
    without, _ = tokenize_sft(examples, _NoOffsets(tok))
    assert without == with_offsets


def test_every_bundled_demo_row_trains_exactly_its_answer(tok):
    examples = []
    for name in ("self_cognition.jsonl", "general_chat.jsonl"):
        path = recipes_dir() / "data" / name
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            examples.append(dict(json.loads(line), where=f"{name}:{n}"))
    rows, stats = tokenize_sft(examples, tok, max_length=512)
    assert stats.rows_out == len(examples) and not stats.truncated
    for example, row in zip(examples, rows):
        assert trained_runs(tok, row) == [example["messages"][-1]["content"] + "<|im_end|>"], example["where"]


def test_common_prefix_of_strings_and_token_ids():
    # One helper for the renderer (text) and DPO's prompt/answer split (token ids).
    assert common_prefix("<|user|>hi<|end|>", "<|user|>hi<|assistant|>") == len("<|user|>hi<|")
    assert common_prefix([1, 2, 3, 9], [1, 2, 3]) == 3
    assert common_prefix([], [1]) == 0 and common_prefix("abc", "xbc") == 0


def test_a_huge_message_is_cut_before_tokenizing_and_keeps_the_same_tokens(tok):
    # Words of varied length, so the cut falls anywhere; the answer alone is ~30x max_length tokens.
    words = " ".join(f"w{i % 97}x{'y' * (i % 13)}" for i in range(8_000))
    row = {"messages": [{"role": "user", "content": "Tell me a long story."},
                        {"role": "assistant", "content": words}], "where": "f.jsonl:1"}
    kept, stats = tokenize_sft([row], tok, max_length=64, overflow="truncate")
    assert stats.cut == 1 and stats.truncated == 1 and len(kept[0]["input_ids"]) == 64
    # The same row with the answer already short of what the cut keeps: same tokens, the cut changed nothing.
    full_ids = tok.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]
    assert kept[0]["input_ids"] == list(full_ids[:64])

    # A prompt of 5 MB: bounded work, and truncating it leaves no answer: dropped, and the report says why.
    huge = {"messages": [{"role": "user", "content": "x " * 2_500_000},
                         {"role": "assistant", "content": "ok"}], "where": "f.jsonl:2"}
    kept, stats = tokenize_sft([huge], tok, max_length=64, overflow="truncate")
    assert kept == [] and stats.cut == 1 and stats.dropped == 1 and stats.emptied == 1
    assert "1 dropped (1 because truncating left no answer to learn)" in stats.summary(64)
