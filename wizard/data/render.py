"""Render conversations into training rows with the model's own chat template.

Loss goes only where the assistant speaks: its content and the end-of-turn token that closes the turn (so
the model learns to stop; "the model never stops" is the commonest complaint about fine-tuned chats). The
header that opens an assistant turn (`<|im_start|>assistant\\n`) is what the chat front-end writes at
inference, so it is not trained, and neither is anything the system or the user says.

Assistant spans are found from the template itself rather than from guessed marker strings: the turn's
content starts where the rendering of the turns before it plus the generation prompt ends. That works for
templates that add a default system prompt, and falls back to finding the content's text when a template
renders earlier turns differently once later ones follow (e.g. templates that strip reasoning).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from wizard.errors import DataError

IGNORE_INDEX = -100
_TOKENIZE_BATCH = 256
_OVER_MAX_SHOWN = 5
_PROBLEMS_SHOWN = 20

# The tokens that close a turn in the common template families. Only those present in the tokenizer as added
# tokens count, plus the tokenizer's own eos.
END_OF_TURN_TOKENS = (
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>",
    "<|end_of_text|>", "</s>", "<|END_OF_TURN_TOKEN|>", "<｜end▁of▁sentence｜>", "<|user|>", "<|observation|>",
)

_FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '__EOT__' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass
class RenderStats:
    rows_in: int = 0
    rows_out: int = 0
    tokens: int = 0
    truncated: int = 0
    dropped: int = 0
    longest: int = 0  # longest rendered row, before truncation
    over_max_examples: list[str] = field(default_factory=list)  # "where" of the first rows over max_length
    trained_tokens: int = 0  # tokens with a label, after truncation
    emptied: int = 0  # of `dropped`: truncation left no assistant token to learn (under overflow: truncate)
    cut: int = 0  # rows with a message longer than char_bound(), cut there before tokenizing

    def summary(self, max_length: int) -> str:
        text = (f"{self.rows_out}/{self.rows_in} rows, {self.tokens} tokens "
                f"({self.trained_tokens} trained), longest {self.longest}")
        if self.truncated or self.dropped:
            text += f"; over max_length {max_length}: {self.truncated} truncated, {self.dropped} dropped"
            if self.emptied:
                text += f" ({self.emptied} because truncating left no answer to learn)"
            if self.over_max_examples:
                text += f" (e.g. {', '.join(self.over_max_examples)})"
        return text


def _has_token(tokenizer, token: str) -> bool:
    return any(t.content == token for t in tokenizer.added_tokens_decoder.values())


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def ensure_chat_template(tokenizer) -> str | None:
    """Give a tokenizer without a chat template a ChatML one; return a warning saying so, else None.

    Uses the real `<|im_start|>`/`<|im_end|>` tokens where the vocabulary has them. Otherwise the turns are
    closed by the tokenizer's existing eos, so no token is added and the embeddings need no resize; only a
    tokenizer with no eos at all gets `<|im_end|>` added (the caller must then resize the model's embeddings
    to len(tokenizer)).
    """
    if getattr(tokenizer, "chat_template", None):
        return None
    added = ""
    if _has_token(tokenizer, "<|im_start|>") and _has_token(tokenizer, "<|im_end|>"):
        end = "<|im_end|>"
        how = "ChatML with the tokenizer's <|im_start|>/<|im_end|> tokens"
    elif tokenizer.eos_token:
        end = tokenizer.eos_token
        how = f"ChatML-shaped turns closed by the tokenizer's eos {end!r}"
    else:
        tokenizer.add_special_tokens({"eos_token": "<|im_end|>"})
        end = "<|im_end|>"
        how = "ChatML turns closed by <|im_end|>"
        added = " It had no eos either, so <|im_end|> was added as one."
    tokenizer.chat_template = _FALLBACK_TEMPLATE.replace("__EOT__", _quote(end))
    return (f"The tokenizer has no chat template, so tune-wizard uses a fallback: {how}.{added} "
            "The trained model expects this template; it is saved with the tokenizer in the run folder.")


def _end_of_turn_strings(tokenizer) -> list[str]:
    strings = {t.content for t in tokenizer.added_tokens_decoder.values() if t.content in END_OF_TURN_TOKENS}
    if tokenizer.eos_token:
        strings.add(tokenizer.eos_token)
    return sorted(strings)


def char_bound(tokenizer, max_length: int) -> int:
    """Characters of one message past which nothing can fall within max_length tokens: no token is longer than
    the vocabulary's longest entry. Text beyond it is cut before rendering and tokenizing, so a 50 MB row costs
    what a max_length row does; twice the bound (and a margin) keeps the cut clear of the tokens kept."""
    longest = max((len(t) for t in tokenizer.get_vocab()), default=16)
    return 2 * max_length * longest + 1024


def bound_messages(messages: list[dict], bound: int) -> tuple[list[dict], bool]:
    """(MESSAGES with each text content cut at BOUND characters, whether any was cut)."""
    if all(not isinstance(m.get("content"), str) or len(m["content"]) <= bound for m in messages):
        return messages, False
    return [{**m, "content": m["content"][:bound]} if isinstance(m.get("content"), str) else m
            for m in messages], True


def _render(tokenizer, messages, add_generation_prompt=False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _assistant_spans(tokenizer, messages: list[dict], full: str, eot: list[str], where: str):
    """Character spans [start, end) to train in `full`, and whether an eos must be appended to close it."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    needs_eos = False
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    for i, message in enumerate(messages):
        content = str(message.get("content") or "").strip()
        if message["role"] != "assistant":
            # Walk past the other turns too, so that finding an assistant's text by search (the fallback
            # below) cannot land on a user turn that says the same thing.
            p = full.find(content, cursor) if content else -1
            cursor = p + len(content) if p >= 0 else cursor
            continue
        try:
            prefix = _render(tokenizer, messages[:i], add_generation_prompt=True)
            upto = _render(tokenizer, messages[: i + 1])
        except Exception:  # templates that refuse a partial conversation: find the content's text instead
            prefix = upto = None
        if prefix is not None and full.startswith(prefix) and len(prefix) >= cursor:
            start = len(prefix)
        else:
            # The content lies past where this turn's prefix and the whole rendering part ways, so a user turn
            # with the same text before it is not mistaken for it.
            diverge = common_prefix(prefix, full) if prefix is not None else 0
            start = full.find(content, max(cursor, diverge)) if content else -1
            if start < 0:
                raise DataError(
                    f"{where}: cannot find assistant turn {i + 1} in the chat template's rendering",
                    hint="the model's chat template drops or rewrites this assistant turn; check the row, "
                         "or fine-tune a model whose chat template keeps the assistant's text")
        region_end = len(upto) if upto is not None and full.startswith(upto) and len(upto) > start else len(full)
        at = full.find(content, start, region_end) if content else start
        content_end = at + len(content) if at >= 0 else start
        # The closing token is the first end-of-turn after the content, inside this turn's rendering or right
        # after it (templates like ChatGLM's close a turn with the next turn's role token).
        end = None
        for token in eot:
            p = full.find(token, content_end)
            if p >= 0 and (p < region_end or not full[region_end:p].strip()) and (end is None or p < end[0]):
                end = (p, p + len(token))
        if end is not None:
            train_end = end[1]
        elif i == last_assistant and not full[content_end:].strip():
            # Nothing closes the turn in the template: append an eos after it (and train the whitespace the
            # template writes before it) so the model can stop.
            train_end = len(full)
            needs_eos = True
        else:
            train_end = content_end
        spans.append((start, train_end))
        cursor = train_end
    return spans, needs_eos


def common_prefix(a, b) -> int:
    """Length of the shared start of two strings or token-id lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _labels_from_offsets(ids, offsets, spans) -> list[int]:
    labels = [IGNORE_INDEX] * len(ids)
    ends = [e for _, e in offsets]
    for start, end in spans:
        k = bisect.bisect_right(ends, start)  # first token that ends after the span starts
        while k < len(ids) and offsets[k][0] < end:
            labels[k] = ids[k]
            k += 1
    return labels


def _tokenize_segments(tokenizer, text: str, spans):
    """For tokenizers without offsets: tokenize the text piece by piece at the span boundaries."""
    ids: list[int] = []
    labels: list[int] = []
    pos = 0
    for start, end in spans + [(len(text), len(text))]:
        for a, b, trained in ((pos, start, False), (start, end, True)):
            if b > a:
                piece = tokenizer(text[a:b], add_special_tokens=False)["input_ids"]
                ids += piece
                labels += piece if trained else [IGNORE_INDEX] * len(piece)
        pos = end
    return ids, labels


def _encode(tokenizer, texts: list[str]):
    if not texts:
        return [], []
    if not getattr(tokenizer, "is_fast", False):  # only the Rust tokenizers give character offsets
        return None, None
    try:
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], enc["offset_mapping"]
    except (NotImplementedError, ValueError, KeyError):
        return None, None


def tokenize_sft(examples, tokenizer, max_length: int = 2048, overflow: str = "truncate",
                 assistant_only_loss: bool = True):
    """Render `examples` ({"messages": [...], "where": "file:line"}) into {"input_ids", "labels"} rows.

    Rows over max_length keep their start ("truncate") or are left out ("drop"); a truncated row with no
    assistant token left is dropped too. Both are counted in the returned RenderStats.
    """
    if overflow not in ("truncate", "drop"):
        raise ValueError(f"overflow must be 'truncate' or 'drop', not {overflow!r}")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template: call ensure_chat_template(tokenizer) first")
    eot = _end_of_turn_strings(tokenizer)
    stats = RenderStats(rows_in=len(examples))
    bound = char_bound(tokenizer, max_length)
    rows = []
    problems: list[str] = []
    hint = ""
    for at in range(0, len(examples), _TOKENIZE_BATCH):
        batch = examples[at: at + _TOKENIZE_BATCH]
        texts, span_lists, eos_flags, wheres = [], [], [], []
        for n, example in enumerate(batch):
            where = example.get("where") or f"row {at + n + 1}"
            messages, was_cut = bound_messages(example["messages"], bound)
            stats.cut += was_cut
            try:
                full = _render(tokenizer, messages)
            except Exception as err:  # templates raise on what they cannot render, e.g. a system turn
                problems.append(f"{where}: the model's chat template refuses this conversation: {err}")
                hint = ("change the conversation to what the template accepts (some templates have no "
                        "system role, or require user and assistant turns to alternate)")
                continue
            try:
                spans, needs_eos = _assistant_spans(tokenizer, messages, full, eot, where)
            except DataError as err:
                problems += err.problems
                hint = err.hint
                continue
            if assistant_only_loss and not spans:
                problems.append(f"{where}: no assistant turn to learn from")
                continue
            texts.append(full)
            span_lists.append(spans)
            eos_flags.append(needs_eos)
            wheres.append(where)
        all_ids, all_offsets = _encode(tokenizer, texts)
        for n, full in enumerate(texts):
            if all_ids is not None:
                ids = list(all_ids[n])
                labels = _labels_from_offsets(ids, all_offsets[n], span_lists[n])
            else:
                ids, labels = _tokenize_segments(tokenizer, full, span_lists[n])
            if eos_flags[n] and tokenizer.eos_token_id is not None:
                ids.append(tokenizer.eos_token_id)
                labels.append(tokenizer.eos_token_id)
            if not assistant_only_loss:
                labels = list(ids)
            row = _fit(ids, labels, max_length, overflow, wheres[n], stats)
            if row is not None:
                rows.append(row)
    if problems:
        shown = problems[:_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more")
        raise DataError(shown, hint=hint or "every conversation needs an assistant turn to train on")
    stats.rows_out = len(rows)
    return rows, stats


def _fit(ids, labels, max_length, overflow, where, stats: RenderStats):
    stats.longest = max(stats.longest, len(ids))
    if len(ids) > max_length:
        if len(stats.over_max_examples) < _OVER_MAX_SHOWN:
            stats.over_max_examples.append(where)
        if overflow == "drop":
            stats.dropped += 1
            return None
        ids, labels = ids[:max_length], labels[:max_length]
        # Position 0's label is never predicted (the model shifts labels by one), so it does not count.
        if all(label == IGNORE_INDEX for label in labels[1:]):
            stats.dropped += 1
            stats.emptied += 1
            return None
        stats.truncated += 1
    stats.tokens += len(ids)
    stats.trained_tokens += sum(label != IGNORE_INDEX for label in labels[1:])
    return {"input_ids": ids, "labels": labels}
