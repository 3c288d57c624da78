"""An OpenAI-compatible HTTP API over a loaded model: GET /v1/models, POST /v1/chat/completions.

One model, one generation at a time, first come first served: a model on one GPU gains little from running two
generations side by side, and the memory stays predictable. Requests that arrive while one is generating wait
their turn in a queue with two limits (streaming requests count like any other):

- at most `max_queue` requests wait (`serve --max-queue`, default 16); one more is answered at once with HTTP 429
  (type "requests", code "queue_full") and a `Retry-After` header: the seconds until the requests now in line
  would be done, from the mean time of the recent generations (at least 1);
- a request waits at most `queue_timeout` seconds (`serve --queue-timeout`, default 300); then it is answered
  with HTTP 503 (type "server_error", code "queue_timeout", also with `Retry-After`) and its generation is
  never started. Nor is the generation of a request whose client went away while it waited: it is skipped
  when its turn comes.

OpenAI clients retry 429 and 5xx by themselves (the official one after Retry-After seconds, giving up when that
is over two minutes).

With `api_key`, every route but GET /health (left open for load-balancer probes; it then names no model) needs
`Authorization: Bearer KEY`; without it or with another key the answer is 401 (code "invalid_api_key").

Streaming sends OpenAI's server-sent events, ending with `data: [DONE]`; a client that disconnects stops its
generation at the next token.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wizard import __version__
from wizard.inference.generation import answer, count_prompt_tokens, cut_at_stop
from wizard.inference.loading import Loaded
from wizard.inference.openai_schema import ApiError, ChatRequest, parse_chat_request

_END = object()
MAX_QUEUE = 16          # requests that may wait while one generates (serve --max-queue)
QUEUE_TIMEOUT = 300.0   # seconds one may wait for its turn (serve --queue-timeout)
OPEN_PATHS = ("/health",)  # answered without the API key: load-balancer probes


class GenerationQueue:
    """Turns at the model, one at a time, in arrival order, with at most `max_waiting` requests waiting and
    each for at most `timeout` seconds. Lives on the event loop (no locks): `enter` waits for a turn,
    `leave` hands it to the next in line. The work itself runs in `worker`, a single thread."""

    def __init__(self, max_waiting: int = MAX_QUEUE, timeout: float = QUEUE_TIMEOUT):
        self.max_waiting, self.timeout = max_waiting, timeout
        self.waiting: deque[asyncio.Future] = deque()
        self.busy = False
        self.turn_started = 0.0
        self.recent: deque[float] = deque(maxlen=20)  # seconds the latest turns took
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")

    def retry_after(self) -> int:
        """Seconds until the requests now in line (the one generating and those waiting) would be done."""
        elapsed = time.monotonic() - self.turn_started if self.busy else 0.0
        mean = sum(self.recent) / len(self.recent) if self.recent else max(elapsed, 1.0)
        ahead = len(self.waiting) * mean + (max(mean - elapsed, 0.0) if self.busy else 0.0)
        return max(1, math.ceil(ahead))

    def _begin(self) -> None:
        self.busy, self.turn_started = True, time.monotonic()

    async def enter(self) -> None:
        """Return once it is this request's turn; ApiError 429 when the queue is full, 503 after `timeout`."""
        if not self.busy:
            self._begin()
            return
        if len(self.waiting) >= self.max_waiting:
            wait = self.retry_after()
            raise ApiError(429, f"the server is busy: one request is generating and {len(self.waiting)} are "
                                f"waiting, the most it queues (--max-queue {self.max_waiting}); retry in about "
                                f"{wait} s",
                           None, "queue_full", "requests", headers={"Retry-After": str(wait)})
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        try:
            await asyncio.wait({turn}, timeout=self.timeout)
        except BaseException:  # cancelled while waiting (its client went away)
            self._give_up(turn)
            raise
        if not turn.done():
            self._give_up(turn)
            wait = self.retry_after()
            raise ApiError(503, f"this request waited {self.timeout:g} s for the model without its turn coming, "
                                f"the limit (--queue-timeout {self.timeout:g}); it was not started. The server "
                                f"answers one request at a time and is busy: retry in about {wait} s",
                           None, "queue_timeout", "server_error", headers={"Retry-After": str(wait)})

    def _give_up(self, turn: asyncio.Future) -> None:
        if turn.done():  # the turn came just as the request stopped waiting: pass it on
            self.leave(timed=False)
        else:
            self.waiting.remove(turn)
            turn.cancel()

    def leave(self, timed: bool = True) -> None:
        """End this turn: the next request in line gets the model. `timed`: the turn generated, so its
        length counts in the estimate of Retry-After (a refused or abandoned one does not)."""
        if timed:
            self.recent.append(time.monotonic() - self.turn_started)
        if self.waiting:
            self._begin()
            self.waiting.popleft().set_result(None)
        else:
            self.busy = False

    def leave_when_done(self, job: Future) -> None:
        """End this turn once `job` (running in the worker) is done, whatever happens to its request."""
        loop = asyncio.get_running_loop()
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self.leave))


class RequireApiKey:
    """ASGI middleware: every HTTP route but OPEN_PATHS needs `Authorization: Bearer KEY`, or gets 401."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    def allowed(self, scope) -> bool:
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        scheme, _, token = header.strip().partition(b" ")
        # compare_digest: how long the comparison takes says nothing about how much of the key was right.
        return hmac.compare_digest(token.strip(), self.key) and scheme.lower() == b"bearer"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self.allowed(scope):
            return await self.app(scope, receive, send)
        sent = any(k == b"authorization" for k, _ in scope.get("headers", ()))
        message = ("Incorrect API key provided." if sent else "You didn't provide an API key.") + \
            (" This server needs the key it was started with (serve --api-key or TUNE_WIZARD_API_KEY) as the "
             "header 'Authorization: Bearer KEY'; OpenAI clients send it when given api_key=KEY.")
        await JSONResponse(ApiError(401, message, None, "invalid_api_key").body(), status_code=401,
                           headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


class _Stream(StreamingResponse):
    """A StreamingResponse that calls `on_close` once it is over, however it ended (even never started)."""

    def __init__(self, content, on_close: Callable[[], None], **kwargs):
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def create_app(loaded: Loaded, *, max_tokens_limit: int = 1024, model_name: str | None = None,
               max_queue: int = MAX_QUEUE, queue_timeout: float = QUEUE_TIMEOUT,
               api_key: str | None = None) -> FastAPI:
    name = model_name or loaded.name
    created = int(time.time())
    fingerprint = f"tune-wizard-{__version__}"
    context = getattr(loaded.model.config, "max_position_embeddings", None)
    queue = GenerationQueue(max_queue, queue_timeout)
    worker = queue.worker
    app = FastAPI(title="tune-wizard", version=__version__)
    app.state.worker, app.state.queue = worker, queue
    if api_key:
        app.add_middleware(RequireApiKey, key=api_key)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

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
        # Open to anyone when there is a key: it must not tell them which model is behind it.
        return {"status": "ok"} if api_key else {"status": "ok", "model": name}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != name:
            raise ApiError(404, f"The model '{model_id}' does not exist", "model", "model_not_found")
        return model_card()

    def parse(raw: bytes) -> ChatRequest:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc})", None, "invalid_json") from None
        return parse_chat_request(body, [name], max_tokens_limit)

    async def fit_context(req: ChatRequest) -> None:
        """Count the prompt's tokens (in the worker: a fast tokenizer must not be used from two threads at
        once, so this is part of the request's turn) and cap max_tokens by what is left of the context."""
        try:
            n_prompt = await asyncio.wrap_future(worker.submit(count_prompt_tokens, loaded, req.messages))
        except Exception as exc:  # noqa: BLE001 - the chat template rejected the conversation (e.g. role order)
            raise ApiError(400, f"the chat template cannot render these messages: {exc}", "messages",
                           "invalid_value") from None
        if context:
            if n_prompt >= context:
                raise ApiError(400, f"the prompt has {n_prompt} tokens; this model's context is {context}",
                               "messages", "context_length_exceeded")
            req.max_tokens = min(req.max_tokens, context - n_prompt)

    def generate_kwargs(req: ChatRequest) -> dict:
        return dict(max_new_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                    stop=req.stop, seed=req.seed)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = parse(await request.body())  # a bad request is refused before it queues
        await queue.enter()
        handed = False
        try:
            if await request.is_disconnected():  # its client gave up while it waited: nobody to answer
                return Response(status_code=499)
            await fit_context(req)
            cid, now = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
            cancel = threading.Event()
            if req.stream:
                events, job = _events(req, cid, now, cancel)
            else:
                job = worker.submit(answer, loaded, req.messages, cancel=cancel, **generate_kwargs(req))
            queue.leave_when_done(job)  # the turn lasts as long as the generation, even if its client leaves
            handed = True
        finally:
            if not handed:  # refused (e.g. the prompt is too long) or abandoned: nothing was generated
                queue.leave(timed=False)
        if req.stream:
            return _Stream(events, on_close=cancel.set, media_type="text/event-stream",
                           headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            got = await asyncio.wrap_future(job)
        finally:
            cancel.set()  # normal end: no effect; a request cancelled meanwhile: its generation stops
        return {"id": cid, "object": "chat.completion", "created": now, "model": name,
                "system_fingerprint": fingerprint,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": got.text},
                             "logprobs": None, "finish_reason": _finish(got.finish_reason)}],
                "usage": _usage(got)}

    def _events(req: ChatRequest, cid: str, now: int, cancel: threading.Event) -> tuple[AsyncIterator[str], Future]:
        """(the server-sent events, the generation already submitted to the worker)."""
        from transformers import TextStreamer

        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()

        class QueueStreamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False):
                if text:
                    loop.call_soon_threadsafe(pieces.put_nowait, text)

        def work():
            try:
                return answer(loaded, req.messages, streamer=QueueStreamer(loaded.tokenizer, skip_prompt=True,
                                                                          skip_special_tokens=True),
                              cancel=cancel, **generate_kwargs(req))
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, _END)

        def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices=True) -> str:
            body = {"id": cid, "object": "chat.completion.chunk", "created": now, "model": name,
                    "system_fingerprint": fingerprint,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                    if choices else []}
            if usage is not None:
                body["usage"] = usage
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        job = worker.submit(work)

        async def events() -> AsyncIterator[str]:
            # Text that might be the start of a stop string is held back until it is clearly not one.
            hold = max((len(s) for s in req.stop), default=1) - 1
            full, sent, stopped = "", 0, False
            try:
                yield chunk({"role": "assistant", "content": ""})
                while (piece := await pieces.get()) is not _END:
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
                    got = await asyncio.wrap_future(job)
                except Exception as exc:  # noqa: BLE001 - the status line is already sent; report in the stream
                    err = ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", None, None,
                                   "server_error")
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

        return events(), job

    return app


def _finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _usage(got) -> dict:
    return {"prompt_tokens": got.prompt_tokens, "completion_tokens": got.completion_tokens,
            "total_tokens": got.prompt_tokens + got.completion_tokens}
