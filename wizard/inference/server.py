"""An OpenAI-compatible HTTP API over a loaded model: GET /v1/models, POST /v1/chat/completions.

One model, one generation at a time: requests wait their turn in a single worker thread (a model on one
GPU gains little from running two generations side by side, and the memory stays predictable), so
concurrent clients are queued, never crashed. Streaming sends OpenAI's server-sent events, ending with
`data: [DONE]`; a client that disconnects stops its generation at the next token.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wizard import __version__
from wizard.inference.generation import answer, count_prompt_tokens, cut_at_stop
from wizard.inference.loading import Loaded
from wizard.inference.openai_schema import ApiError, ChatRequest, parse_chat_request

_END = object()


def create_app(loaded: Loaded, *, max_tokens_limit: int = 1024, model_name: str | None = None) -> FastAPI:
    name = model_name or loaded.name
    created = int(time.time())
    fingerprint = f"tune-wizard-{__version__}"
    context = getattr(loaded.model.config, "max_position_embeddings", None)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
    app = FastAPI(title="tune-wizard", version=__version__)
    app.state.worker = worker

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        code = "not_found" if exc.status_code == 404 else None
        return JSONResponse(ApiError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}",
                                     None, code).body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse(ApiError(400, first.get("msg", "invalid request"), param, "invalid_value").body(),
                            status_code=400)

    @app.exception_handler(Exception)
    async def _server_error(request, exc):
        return JSONResponse(ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", None, None,
                                     "server_error").body(), status_code=500)

    def model_card() -> dict:
        return {"id": name, "object": "model", "created": created, "owned_by": "tune-wizard"}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != name:
            raise ApiError(404, f"The model '{model_id}' does not exist", "model", "model_not_found")
        return model_card()

    async def in_worker(fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(worker, partial(fn, *args, **kwargs))

    async def prepare(request: Request) -> ChatRequest:
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc})", None, "invalid_json") from None
        req = parse_chat_request(body, [name], max_tokens_limit)
        # Tokenized in the worker: a fast tokenizer must not be used from two threads at once.
        try:
            n_prompt = await in_worker(count_prompt_tokens, loaded, req.messages)
        except Exception as exc:  # noqa: BLE001 - the chat template rejected the conversation (e.g. role order)
            raise ApiError(400, f"the chat template cannot render these messages: {exc}", "messages",
                           "invalid_value") from None
        if context:
            if n_prompt >= context:
                raise ApiError(400, f"the prompt has {n_prompt} tokens; this model's context is {context}",
                               "messages", "context_length_exceeded")
            req.max_tokens = min(req.max_tokens, context - n_prompt)
        return req

    def generate_kwargs(req: ChatRequest) -> dict:
        return dict(max_new_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                    stop=req.stop, seed=req.seed)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = await prepare(request)
        cid, now = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            return StreamingResponse(_events(req, cid, now), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        got = await in_worker(answer, loaded, req.messages, **generate_kwargs(req))
        return {"id": cid, "object": "chat.completion", "created": now, "model": name,
                "system_fingerprint": fingerprint,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": got.text},
                             "logprobs": None, "finish_reason": _finish(got.finish_reason)}],
                "usage": _usage(got)}

    async def _events(req: ChatRequest, cid: str, now: int) -> AsyncIterator[str]:
        from transformers import TextStreamer

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        class QueueStreamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False):
                if text:
                    loop.call_soon_threadsafe(queue.put_nowait, text)

        def work():
            try:
                return answer(loaded, req.messages, streamer=QueueStreamer(loaded.tokenizer, skip_prompt=True,
                                                                          skip_special_tokens=True),
                              cancel=cancel, **generate_kwargs(req))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices=True) -> str:
            body = {"id": cid, "object": "chat.completion.chunk", "created": now, "model": name,
                    "system_fingerprint": fingerprint,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                    if choices else []}
            if usage is not None:
                body["usage"] = usage
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        future = loop.run_in_executor(worker, work)
        # Text that might be the start of a stop string is held back until it is clearly not one.
        hold = max((len(s) for s in req.stop), default=1) - 1
        full, sent, stopped = "", 0, False
        try:
            yield chunk({"role": "assistant", "content": ""})
            while (piece := await queue.get()) is not _END:
                if stopped:
                    continue
                full += piece
                cut = cut_at_stop(full, req.stop) if req.stop else None
                upto = cut if cut is not None else len(full) - hold
                if upto > sent:
                    yield chunk({"content": full[sent:upto]})
                    sent = upto
                stopped = cut is not None
            try:
                got = await future
            except Exception as exc:  # noqa: BLE001 - the status line is already sent; report in the stream
                err = ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", None, None, "server_error")
                yield f"data: {json.dumps(err.body())}\n\n"
                return
            if not stopped and sent < len(full):
                yield chunk({"content": full[sent:]})
            yield chunk({}, _finish(got.finish_reason))
            if req.include_usage:
                yield chunk({}, usage=_usage(got), choices=False)
            yield "data: [DONE]\n\n"
        finally:
            cancel.set()  # normal end: no effect; a client that left: its generation stops at the next token

    return app


def _finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _usage(got) -> dict:
    return {"prompt_tokens": got.prompt_tokens, "completion_tokens": got.completion_tokens,
            "total_tokens": got.prompt_tokens + got.completion_tokens}
