"""Dataset formats: which one a source uses, and each row turned into the engine's example.

SFT example:  {"messages": [{"role", "content"}, ...]}  (ends with a non-empty assistant turn)
DPO example:  {"prompt": [... ending with a user turn], "chosen": [assistant], "rejected": [assistant]}

A converter checks the whole row and raises RowError with every problem it found, each written as
"problem; fix"; the loader puts "path:line: " in front.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wizard.data.readers import a_type

ROLES = ("system", "user", "assistant")
# ShareGPT exports name the speakers in many ways; these are the ones the common datasets use.
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "model": "assistant", "bot": "assistant", "chatgpt": "assistant", "system": "system"}


class RowError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class _Check:
    """Problems of one row, gathered so a row with three mistakes is reported once, with all three."""

    def __init__(self, fmt: Format):
        self.fmt = fmt
        self.problems: list[str] = []
        self.dropped_turn = False  # a bad turn was left out: the turn order can no longer be judged

    def add(self, text: str) -> None:
        self.problems.append(text)

    def done(self) -> None:
        if self.problems:
            raise RowError(self.problems)

    def field(self, row: dict, key: str, optional: bool = False) -> Any:
        if key not in row or (row[key] is None and not optional):
            if not optional:
                self.add(f"missing field '{key}'; the {self.fmt.name} format needs {self.fmt.describe()}: "
                         f"add it, or map your column to it with `columns:`")
            return None
        return row[key]

    def text(self, row: dict, key: str, optional: bool = False) -> str | None:
        v = self.field(row, key, optional)
        if v is None or isinstance(v, str):
            return v
        self.add(f"'{key}' is {a_type(v)}, expected a string; write the text as one string")
        return None


@dataclass(frozen=True)
class Format:
    name: str
    task: str  # "sft" or "dpo"
    needs: tuple[str, ...]
    optional: tuple[str, ...]
    convert: Callable[[dict, _Check], dict]
    # A preference format whose rows also hold a complete SFT conversation (messages + rejected_response):
    # an SFT run can use it, ignoring the rejected answer.
    sft_base: str | None = None

    def describe(self) -> str:
        extra = f" (optional: {', '.join(self.optional)})" if self.optional else ""
        return ", ".join(self.needs) + extra

    def to_example(self, row: dict) -> dict:
        check = _Check(self)
        out = self.convert(row, check)
        check.done()
        return out


def _maybe_json(v: Any) -> Any:
    # CSV cells and some Parquet/hub columns hold lists as JSON text. Only used where a string is never
    # valid (messages, conversations, history): a prompt or answer may well be the text "[1, 2, 3]".
    if isinstance(v, str) and v.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


# ------------------------------------------------------------------ conversation pieces

def _messages(value: Any, key: str, check: _Check, sharegpt: bool = False) -> list[dict]:
    value = _maybe_json(value)
    role_key, text_key = ("from", "value") if sharegpt else ("role", "content")
    if not isinstance(value, list):
        check.add(f"'{key}' is {a_type(value)}, expected a list of {{{role_key}, {text_key}}} objects")
        return []
    if not value:
        check.add(f"'{key}' is an empty list; a conversation needs at least one assistant turn")
    out = []
    before = len(check.problems)
    for i, m in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(m, dict):
            check.add(f"{where} is {a_type(m)}, expected an object with {role_key} and {text_key}")
            continue
        # ShareGPT files sometimes use role/content inside `conversations`; both spellings are accepted.
        rk = role_key if role_key in m else ("role" if "role" in m else "from")
        tk = text_key if text_key in m else ("content" if "content" in m else "value")
        role, content = m.get(rk), m.get(tk)
        if rk not in m:
            check.add(f"{where}: missing field '{role_key}'; give each turn a {role_key}")
            continue
        mapped = SHAREGPT_ROLES.get(role) if isinstance(role, str) and (sharegpt or rk == "from") else role
        if mapped not in ROLES:
            known = "human, gpt, system" if rk == "from" else ", ".join(ROLES)
            check.add(f"{where}: unknown role {role!r}; use one of {known}")
            continue
        if content is None:
            check.add(f"{where}: missing field '{tk}' (or it is null); give each turn its text")
            continue
        if not isinstance(content, str):
            check.add(f"{where}.{tk} is {a_type(content)}, expected a string; write the text as one string")
            continue
        out.append({"role": mapped, "content": content})
    check.dropped_turn |= len(check.problems) > before
    return out


def _check_turns(msgs: list[dict], key: str, check: _Check, last: str = "assistant") -> None:
    if check.dropped_turn:
        # A turn already reported was left out of `msgs`; checking the order now would only report that gap.
        return
    for i, m in enumerate(msgs):
        if m["role"] == "system" and i > 0:
            check.add(f"{key}[{i}]: a system message after the first turn; move it to the start")
        if m["role"] == "assistant" and not m["content"].strip():
            check.add(f"{key}[{i}]: empty assistant turn; write the answer, or drop the row")
    if msgs and msgs[-1]["role"] != last:
        if last == "assistant":
            check.add(f"'{key}' ends with {_a(msgs[-1]['role'])} turn, not an assistant turn; end the conversation "
                      "with the assistant's answer (the part the model learns)")
        else:
            check.add(f"the prompt ends with {_a(msgs[-1]['role'])} turn; it must end with the user turn "
                      "that the chosen and rejected answers reply to")


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeio" else f"a {word}"  # a user, an assistant


def _history(row: dict, check: _Check) -> list[dict]:
    """ms-swift / alpaca `history`: [[query, answer], ...] before the final exchange."""
    h = _maybe_json(row.get("history"))
    if h is None or h == "":
        return []
    if not isinstance(h, list):
        check.add(f"'history' is {a_type(h)}, expected a list of [question, answer] pairs")
        return []
    out = []
    for i, pair in enumerate(h):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, str) for x in pair)):
            check.add(f"history[{i}] is not a [question, answer] pair of strings; write it as [\"...\", \"...\"]")
            continue
        if not pair[1].strip():
            check.add(f"history[{i}]: empty answer; write it, or drop the pair")
        out += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return out


def _with_system(row: dict, msgs: list[dict], check: _Check) -> list[dict]:
    system = row.get("system")
    if system in (None, ""):
        return msgs
    if not isinstance(system, str):
        check.add(f"'system' is {a_type(system)}, expected a string")
        return msgs
    if msgs and msgs[0]["role"] == "system":
        return msgs
    return [{"role": "system", "content": system}, *msgs]


def _answer(value: Any, key: str, check: _Check) -> list[dict]:
    """A chosen/rejected answer: a string, one {role|from, content|value} turn, or a list of one."""
    if value is None:  # missing: already reported by _Check.field
        return []
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        turn = _messages([value], key, check)
        if turn and turn[0]["role"] != "assistant":
            check.add(f"'{key}' is {_a(turn[0]['role'])} turn; it must be the assistant's answer")
            return []
        value = turn[0]["content"] if turn else None
        if value is None:
            return []
    if not isinstance(value, str):
        check.add(f"'{key}' is {a_type(value)}, expected a string (or one assistant turn)")
        return []
    if not value.strip():
        check.add(f"'{key}' is empty; write the answer, or drop the row")
    return [{"role": "assistant", "content": value}]


# ------------------------------------------------------------------ SFT formats

def _alpaca_prompt(row: dict, c: _Check) -> list[dict]:
    instruction = c.text(row, "instruction")
    extra = c.text(row, "input", optional=True)
    parts = [p for p in (instruction, extra) if p]
    if instruction is not None and not parts:
        c.add("'instruction' and 'input' are both empty; write the instruction")
    return _with_system(row, _history(row, c) + [{"role": "user", "content": "\n".join(parts)}], c)


def _alpaca(row: dict, c: _Check) -> dict:
    msgs = _alpaca_prompt(row, c)
    output = c.text(row, "output")
    if output is not None and not output.strip():
        c.add("'output' is empty; write the answer, or drop the row")
    return {"messages": msgs + [{"role": "assistant", "content": output or ""}]}


def _sharegpt(row: dict, c: _Check) -> dict:
    msgs = _with_system(row, _messages(c.field(row, "conversations"), "conversations", c, sharegpt=True), c)
    _check_turns(msgs, "conversations", c)
    return {"messages": msgs}


def _openai(row: dict, c: _Check) -> dict:
    msgs = _messages(c.field(row, "messages"), "messages", c)
    _check_turns(msgs, "messages", c)
    return {"messages": msgs}


def _query_response(row: dict, c: _Check) -> dict:
    query, response = c.text(row, "query"), c.text(row, "response")
    if response is not None and not response.strip():
        c.add("'response' is empty; write the answer, or drop the row")
    msgs = _history(row, c) + [{"role": "user", "content": query or ""}, {"role": "assistant", "content": response or ""}]
    return {"messages": _with_system(row, msgs, c)}


def _prompt_completion(row: dict, c: _Check) -> dict:
    prompt, completion = c.field(row, "prompt"), c.field(row, "completion")
    msgs = _prompt_turns(prompt, c) if prompt is not None else []
    if isinstance(completion, list):
        done = _messages(completion, "completion", c)
        if any(m["role"] != "assistant" for m in done):
            c.add("'completion' holds non-assistant turns; it must be the assistant's answer")
    elif completion is None:
        done = []
    elif isinstance(completion, str):
        done = [{"role": "assistant", "content": completion}]
    else:
        c.add(f"'completion' is {a_type(completion)}, expected a string or a list of assistant turns")
        done = []
    msgs = _with_system(row, msgs + done, c)
    _check_turns(msgs, "completion", c)
    return {"messages": msgs}


def _prompt_turns(prompt: Any, c: _Check) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list):
        return _messages(prompt, "prompt", c)
    c.add(f"'prompt' is {a_type(prompt)}, expected a string or a list of {{role, content}} turns")
    return []


SFT = {f.name: f for f in (
    Format("messages", "sft", ("messages",), (), _openai),
    Format("sharegpt", "sft", ("conversations",), ("system",), _sharegpt),
    Format("alpaca", "sft", ("instruction", "output"), ("input", "system", "history"), _alpaca),
    Format("query_response", "sft", ("query", "response"), ("system", "history"), _query_response),
    Format("prompt_completion", "sft", ("prompt", "completion"), ("system",), _prompt_completion),
)}


# ------------------------------------------------------------------ preference formats

def _pref(prompt: list[dict] | None, chosen: list[dict], rejected: list[dict], c: _Check) -> dict:
    if prompt is None:  # missing: already reported
        prompt = []
    elif not prompt:
        c.add("the prompt is empty; write the user turn the answers reply to")
    else:
        _check_turns(prompt, "prompt", c, last="user")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _prompt_chosen_rejected(row: dict, c: _Check) -> dict:
    prompt = c.field(row, "prompt")
    msgs = _with_system(row, _prompt_turns(prompt, c), c) if prompt is not None else None
    return _pref(msgs, _answer(c.field(row, "chosen"), "chosen", c), _answer(c.field(row, "rejected"), "rejected", c), c)


def _implicit_prompt(row: dict, c: _Check) -> dict:
    """TRL's implicit-prompt rows: chosen and rejected are whole conversations sharing the prompt."""
    chosen, rejected = c.field(row, "chosen"), c.field(row, "rejected")
    if chosen is None or rejected is None:
        return {}
    if not isinstance(chosen, list) or not isinstance(rejected, list):
        c.add("without a 'prompt' field, 'chosen' and 'rejected' must be whole conversations (lists of "
              "{role, content} turns); otherwise add the 'prompt' field")
        return {}
    a, b = _messages(chosen, "chosen", c), _messages(rejected, "rejected", c)
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    return _pref(_with_system(row, a[:n], c), _answer(a[n:], "chosen", c), _answer(b[n:], "rejected", c), c)


def _split_sft(base: Format) -> Callable[[dict, _Check], dict]:
    """ms-swift style: a complete SFT conversation (chosen = its last assistant turn) + rejected_response."""
    def convert(row: dict, c: _Check) -> dict:
        msgs = base.convert(row, c)["messages"]
        if not msgs or msgs[-1]["role"] != "assistant":
            return {}
        return _pref(msgs[:-1], [msgs[-1]], _answer(c.field(row, "rejected_response"), "rejected_response", c), c)
    return convert


def _with_answers(base_prompt: Callable[[dict, _Check], list[dict]]) -> Callable[[dict, _Check], dict]:
    def convert(row: dict, c: _Check) -> dict:
        return _pref(base_prompt(row, c), _answer(c.field(row, "chosen"), "chosen", c),
                     _answer(c.field(row, "rejected"), "rejected", c), c)
    return convert


def _sharegpt_prompt(row: dict, c: _Check) -> list[dict]:
    return _with_system(row, _messages(c.field(row, "conversations"), "conversations", c, sharegpt=True), c)


DPO = {f.name: f for f in (
    Format("sharegpt+chosen/rejected", "dpo", ("conversations", "chosen", "rejected"), ("system",),
           _with_answers(_sharegpt_prompt)),
    Format("alpaca+chosen/rejected", "dpo", ("instruction", "chosen", "rejected"), ("input", "system", "history"),
           _with_answers(_alpaca_prompt)),
    Format("prompt/chosen/rejected", "dpo", ("prompt", "chosen", "rejected"), ("system",), _prompt_chosen_rejected),
    *(Format(f"{b.name}+rejected_response", "dpo", b.needs + ("rejected_response",), b.optional, _split_sft(b),
             sft_base=b.name) for b in SFT.values() if b.name != "prompt_completion"),
    Format("chosen/rejected", "dpo", ("chosen", "rejected"), ("system",), _implicit_prompt),
)}

# What a `format:` name in the spec means for each task.
NAMED = {
    "sft": {name: [name] for name in SFT},
    "dpo": {
        "preference": list(DPO),
        "messages": ["messages+rejected_response"],
        "sharegpt": ["sharegpt+chosen/rejected", "sharegpt+rejected_response"],
        "alpaca": ["alpaca+chosen/rejected", "alpaca+rejected_response"],
        "query_response": ["query_response+rejected_response"],
    },
}


def detect(keys: set[str], task: str) -> tuple[Format | None, Format | None]:
    """(format for this task, a format of the other task that fits) from the keys the rows hold."""
    mine, other = (SFT, DPO) if task == "sft" else (DPO, SFT)
    found = next((f for f in mine.values() if set(f.needs) <= keys), None)
    if task == "sft":
        # messages + rejected_response is a full SFT conversation too; chosen/rejected rows are not.
        pref = next((f for f in DPO.values() if set(f.needs) <= keys), None)
        if pref is not None and pref.sft_base is None:
            return None, pref
        return found, pref
    return found, (None if found else next((f for f in other.values() if set(f.needs) <= keys), None))


def known_formats(task: str) -> str:
    table = SFT if task == "sft" else DPO
    return "; ".join(f"{f.name} ({', '.join(f.needs)})" for f in table.values())
