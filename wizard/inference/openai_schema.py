"""Checking an OpenAI chat-completions request body, with errors shaped the way OpenAI shapes them.

Hand-written rather than a pydantic model: OpenAI clients send many optional fields this server ignores,
and each problem must come back as {"error": {"message", "type", "param", "code"}} naming the field
(`messages[1].role`), not as FastAPI's 422 list. Python's json module reads NaN, Infinity and numbers too large
for a float (1e999); no field of a request may hold one (400, naming the field), be it a field this server uses
or one it ignores.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "developer", "user", "assistant")


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    model: str
    messages: list[dict]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stream: bool = False
    include_usage: bool = False
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


def _number(body: dict, key: str, default: float, low: float, high: float, low_open: bool = False) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"'{key}' must be a number, got {type(value).__name__}", key, "invalid_type")
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise ApiError(400, f"'{key}' must be in {bound}, got {value}", key, "invalid_value")
    return float(value)


def _check_finite(body: Any) -> None:
    """ApiError naming the first field (`temperature`, `logit_bias.42`, `messages[0].x`) that holds NaN or
    an infinity. Walked with a stack: a deeply nested body must not exhaust Python's recursion."""
    todo: list[tuple[str, Any]] = [("", body)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ApiError(400, f"'{path}' must be a finite number, got {json.dumps(value)}", path or None,
                           "invalid_value")
        if isinstance(value, dict):
            todo.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            todo.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))


def _content(message: Any, i: int) -> str:
    content = message.get("content")
    if content is None and message.get("role") == "assistant":
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text ones make sense for a text model
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"messages[{i}].content[{j}]: only text parts are supported",
                               f"messages[{i}].content", "invalid_value")
            texts.append(part["text"])
        return "".join(texts)
    raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts",
                   f"messages[{i}].content", "invalid_type")


def parse_chat_request(body: Any, model_names: list[str], max_tokens_limit: int) -> ChatRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", None, "invalid_json")
    _check_finite(body)
    model = body.get("model", model_names[0])
    if not isinstance(model, str):
        raise ApiError(400, "'model' must be a string", "model", "invalid_type")
    if model not in model_names:
        raise ApiError(404, f"The model '{model}' does not exist; this server serves {', '.join(model_names)}",
                       "model", "model_not_found")
    messages = body.get("messages")
    if messages is None:
        raise ApiError(400, "'messages' is required", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects", "messages",
                       "invalid_type")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ApiError(400, f"messages[{i}] must be an object with role and content", f"messages[{i}]",
                           "invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise ApiError(400, f"messages[{i}].role: {role!r} is not one of {', '.join(ROLES)}",
                           f"messages[{i}].role", "invalid_value")
        clean.append({"role": "system" if role == "developer" else role, "content": _content(m, i)})
    if clean[-1]["role"] == "assistant":
        raise ApiError(400, "the last message must not be the assistant's: there is nothing to answer",
                       f"messages[{len(clean) - 1}].role", "invalid_value")
    for key in ("tools", "functions"):
        if body.get(key):
            raise ApiError(400, f"'{key}' is not supported by this server", key, "unsupported_parameter")
    n = body.get("n", 1)
    if n != 1 or isinstance(n, bool):
        raise ApiError(400, "only n=1 is supported", "n", "unsupported_value")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(key)
    if max_tokens is None:
        max_tokens = max_tokens_limit
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, f"'{key}' must be a positive integer, got {max_tokens!r}", key, "invalid_value")
    elif max_tokens > max_tokens_limit:
        raise ApiError(400, f"'{key}' is {max_tokens}, over this server's limit of {max_tokens_limit} "
                            "(--max-new-tokens-limit)", key, "invalid_value")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", "stream", "invalid_type")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", "stream_options", "invalid_type")
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, "'stop' must be a string or a list of up to 4 non-empty strings", "stop", "invalid_value")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError(400, "'seed' must be an integer", "seed", "invalid_type")
    if seed is not None and not -2**63 <= seed < 2**63:
        raise ApiError(400, f"'seed' must fit in 64 bits (-2**63 to 2**63-1), got {seed}", "seed", "invalid_value")
    return ChatRequest(model=model, messages=clean, max_tokens=max_tokens,
                       temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
                       top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True), stream=stream,
                       include_usage=bool(options.get("include_usage")), stop=stop, seed=seed)
