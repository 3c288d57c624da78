"""`tune-wizard serve` in-process (no server process): the queue's limits under load (429 with Retry-After when
full, 503 after --queue-timeout, first come first served), the API key (spoken to by the official openai
client), requests holding NaN or infinities, and the command's options, banner and warning.

The app is create_app over a 2-layer Llama built from a config; the generations the queue tests need to be slow
wait on a gate the test opens, so the queue's state is known at every step rather than guessed from timings."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from wizard.commands import serve as serve_cmd
from wizard.inference import server as server_mod

KEY = "tw-test-0123456789"


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from wizard.inference.loading import load_for_inference

    return load_for_inference(str(tiny_model_dir))


@pytest.fixture
def serve(loaded):
    """serve(**create_app options) -> a TestClient over a fresh app (one event loop for all its requests,
    as under uvicorn); the clients are closed and the workers stopped at the end."""
    from fastapi.testclient import TestClient

    opened = []

    def make(**options):
        app = server_mod.create_app(loaded, model_name="tiny", **options)
        client = TestClient(app).__enter__()
        opened.append((client, app))
        return client

    yield make
    for client, app in opened:
        client.__exit__(None, None, None)
        app.state.worker.shutdown(wait=False, cancel_futures=True)


class Gate:
    """Stands in for generation.answer: notes which prompt started generating, waits until opened, then
    answers for real."""

    def __init__(self):
        self.opened = threading.Event()
        self.started: list[str] = []
        self.real = server_mod.answer

    def __call__(self, loaded, messages, **kwargs):
        self.started.append(messages[-1]["content"])
        assert self.opened.wait(60), "the test never opened the gate"
        return self.real(loaded, messages, **kwargs)


@pytest.fixture
def gate(monkeypatch):
    g = Gate()
    monkeypatch.setattr(server_mod, "answer", g)
    yield g
    g.opened.set()  # never leave a worker thread waiting


def until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def chat(client, prompt: str, stream: bool = False, **headers):
    body = {"model": "tiny", "messages": [{"role": "user", "content": prompt}], "max_tokens": 4, "temperature": 0,
            "stream": stream}
    return client.post("/v1/chat/completions", json=body, headers=headers)


def assert_openai_error(r, status: int, code: str, type_: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["code"] == code
    if type_:
        assert err["type"] == type_
    return err


def test_full_queue_gets_429_and_the_queued_ones_are_answered_in_order(serve, gate):
    client = serve(max_queue=2)
    queue = client.app.state.queue
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(chat, client, "first")
        until(lambda: gate.started == ["first"], "the first request generates")
        second = pool.submit(chat, client, "second", True)  # a streaming request takes a place like any other
        until(lambda: len(queue.waiting) == 1, "the second request waits")
        third = pool.submit(chat, client, "third")
        until(lambda: len(queue.waiting) == 2, "the third request waits")
        for stream in (False, True):  # the queue is full: refused at once, streaming or not
            r = chat(client, "too many", stream)
            err = assert_openai_error(r, 429, "queue_full", "requests")
            assert "--max-queue 2" in err["message"] and err["param"] is None
            assert int(r.headers["retry-after"]) >= 1
        gate.opened.set()
        answers = [first.result(60), second.result(60), third.result(60)]
    assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
    assert gate.started == ["first", "second", "third"]  # first come, first served; "too many" never generated
    assert answers[0].json()["choices"][0]["message"]["content"] is not None
    assert answers[1].text.rstrip().endswith("data: [DONE]")
    assert not queue.busy and not queue.waiting  # every turn was handed back


def test_retry_after_is_the_time_the_line_ahead_needs(serve, gate):
    client = serve(max_queue=1)
    queue = client.app.state.queue
    queue.recent.extend([4.0, 6.0])  # as if the last generations took 5 s on average
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(chat, client, "first")
        until(lambda: gate.started == ["first"], "the first request generates")
        second = pool.submit(chat, client, "second")
        until(lambda: len(queue.waiting) == 1, "the second request waits")
        r = chat(client, "third")
        gate.opened.set()
        assert first.result(60).status_code == 200 and second.result(60).status_code == 200
    # one waiting (5 s) plus what is left of the one generating (5 s less the moments it has run)
    assert_openai_error(r, 429, "queue_full")
    assert 9 <= int(r.headers["retry-after"]) <= 10


def test_queue_timeout_gets_503_and_never_starts(serve, gate):
    client = serve(queue_timeout=0.3)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(chat, client, "first")
        until(lambda: gate.started == ["first"], "the first request generates")
        for stream in (False, True):
            t0 = time.monotonic()
            r = chat(client, "late", stream)
            assert time.monotonic() - t0 >= 0.3
            err = assert_openai_error(r, 503, "queue_timeout", "server_error")
            assert "--queue-timeout 0.3" in err["message"] and "not started" in err["message"]
            assert int(r.headers["retry-after"]) >= 1
        gate.opened.set()
        assert first.result(60).status_code == 200
    assert gate.started == ["first"]  # the late ones never reached the model
    assert chat(client, "after").status_code == 200  # and the queue is not stuck


def test_a_request_whose_client_left_while_waiting_is_skipped(loaded, gate):
    """Spoken to in raw ASGI: the test client cannot hang up, a `receive` can say http.disconnect."""
    import asyncio

    app = server_mod.create_app(loaded, model_name="tiny")

    async def call(prompt: str, gone: bool) -> int:
        body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": 2}).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        statuses = []

        async def receive():
            if messages:
                return messages.pop()
            if gone:
                return {"type": "http.disconnect"}
            await asyncio.Event().wait()  # a client still there has nothing more to say

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                   "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                   "query_string": b"", "root_path": "", "headers": [(b"content-type", b"application/json")],
                   "client": ("127.0.0.1", 1), "server": ("testserver", 80)}, receive, send)
        return statuses[0]

    async def scenario():
        first = asyncio.create_task(call("first", gone=False))
        while gate.started != ["first"]:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(call("second", gone=True))
        while len(app.state.queue.waiting) != 1:
            await asyncio.sleep(0.01)
        gate.opened.set()
        return await first, await second

    try:
        assert asyncio.run(asyncio.wait_for(scenario(), 60)) == (200, 499)
    finally:
        app.state.worker.shutdown(wait=False, cancel_futures=True)
    assert gate.started == ["first"] and not app.state.queue.busy


def test_a_refused_request_gives_its_turn_back(serve):
    client = serve(max_queue=0)
    long = "word " * 600  # over the tiny model's 512-token context: refused in its turn, after tokenizing
    r = chat(client, long)
    assert_openai_error(r, 400, "context_length_exceeded")
    assert chat(client, "short").status_code == 200  # max_queue=0: it would be a 429 had the turn stayed taken


@pytest.fixture
def openai_for(serve):
    """openai_for(api_key) -> the official client, its requests going to an in-process app with key KEY."""
    from openai import OpenAI

    http = serve(api_key=KEY)
    return lambda api_key: OpenAI(base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0)


def test_the_right_key_works(openai_for):
    client = openai_for(KEY)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    got = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert got.choices[0].message.role == "assistant"
    chunks = list(client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=3, stream=True))
    assert chunks and chunks[0].choices[0].delta.role == "assistant"


@pytest.mark.parametrize("api_key", ["unused", KEY + "x", KEY[:-1], None], ids=["wrong", "longer", "shorter", "none"])
def test_a_wrong_or_missing_key_is_401(openai_for, api_key):
    import openai

    client = openai_for(api_key or "unused")
    # The client insists on a key; no Authorization header at all is asked for per request.
    extra = {"extra_headers": {"Authorization": openai.Omit()}} if api_key is None else {}
    for call in (lambda: client.models.list(**extra),
                 lambda: client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}],
                                                        **extra)):
        with pytest.raises(openai.AuthenticationError) as caught:
            call()
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
        assert caught.value.type == "invalid_request_error"
        message = caught.value.body["message"]  # .message adds "Error code: 401 - "
        assert message.startswith("You didn't provide" if api_key is None else "Incorrect API key")
        assert "Authorization: Bearer KEY" in message and "api_key=KEY" in message and KEY not in message


def test_every_route_but_health_needs_the_key(serve):
    client = serve(api_key=KEY)
    for path in ("/v1/models", "/v1/models/tiny", "/v1/nothing-here", "/openapi.json", "/docs"):
        r = client.get(path)
        assert_openai_error(r, 401, "invalid_api_key")
        assert r.headers["www-authenticate"] == "Bearer"
        assert "didn't provide" in r.json()["error"]["message"]
    assert client.get("/v1/models", headers={"Authorization": f"bearer  {KEY}"}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": f"Basic {KEY}"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": KEY}).status_code == 401
    assert client.get("/v1/nothing-here", headers={"Authorization": f"Bearer {KEY}"}).status_code == 404
    health = client.get("/health")  # open, for load-balancer probes; it does not name the model then
    assert health.status_code == 200 and health.json() == {"status": "ok"}


@pytest.mark.parametrize("raw,param", [
    ('"temperature": NaN', "temperature"),
    ('"top_p": NaN', "top_p"),
    ('"temperature": Infinity', "temperature"),
    ('"top_p": -Infinity', "top_p"),
    ('"temperature": 1e999', "temperature"),  # too large for a float: Python reads it as inf
    ('"max_tokens": Infinity', "max_tokens"),
    ('"seed": NaN', "seed"),
    ('"presence_penalty": NaN', "presence_penalty"),  # a field this server ignores is checked all the same
    ('"logit_bias": {"42": -Infinity}', "logit_bias.42"),
])
def test_nan_and_infinity_are_refused(serve, raw, param):
    client = serve()
    body = '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, ' + raw + "}"
    r = client.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    err = assert_openai_error(r, 400, "invalid_value", "invalid_request_error")
    assert err["param"] == param and "finite" in err["message"]


def test_seed_out_of_64_bits_is_refused(serve):
    client = serve()
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "seed": 2**64,
                                                  "temperature": 0.5, "max_tokens": 2})
    assert assert_openai_error(r, 400, "invalid_value")["param"] == "seed"


# The command: options, key resolution, banner and warning.

def test_help_states_the_limits_and_access(capsys):
    from wizard.cli import main

    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--max-queue N", "--queue-timeout SECONDS", "429", "Retry-After", "503", "never started",
                  "--api-key KEY", "TUNE_WIZARD_API_KEY", "the flag wins", "Authorization: Bearer KEY",
                  "every route but GET /health", "/health stays open", "default 16", "default 300"):
        assert words in text, words


def test_command_defaults_match_the_server():
    assert (serve_cmd.MAX_QUEUE, serve_cmd.QUEUE_TIMEOUT) == (server_mod.MAX_QUEUE, server_mod.QUEUE_TIMEOUT)


def test_api_key_sources():
    env = {"TUNE_WIZARD_API_KEY": "from-env"}
    assert serve_cmd.api_key("from-flag", env) == ("from-flag", "--api-key")  # the flag wins
    assert serve_cmd.api_key(None, env) == ("from-env", "TUNE_WIZARD_API_KEY")
    assert serve_cmd.api_key(None, {}) == (None, "")
    from wizard.errors import UserError

    for flag, environ in (("", {}), (None, {"TUNE_WIZARD_API_KEY": ""}), ("two words", {}), ("clé", {})):
        with pytest.raises(UserError):
            serve_cmd.api_key(flag, environ)


def test_warning_when_exposed_without_a_key():
    warn = serve_cmd.exposure_warning("tiny", "0.0.0.0", 8000, None)
    assert "every address of this machine" in warn and "port 8000" in warn and "anyone who can reach" in warn
    assert "model tiny" in warn and "--api-key KEY" in warn and "TUNE_WIZARD_API_KEY=KEY" in warn
    assert "192.168.1.5" in serve_cmd.exposure_warning("tiny", "192.168.1.5", 8000, None)
    assert serve_cmd.exposure_warning("tiny", "0.0.0.0", 8000, KEY) is None
    for local in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert serve_cmd.exposure_warning("tiny", local, 8000, None) is None


def test_banner_with_a_key_shows_how_to_send_it():
    plain = serve_cmd.banner("tiny", "127.0.0.1", 8000)
    assert "Authorization" not in plain and "api_key='unused'" in plain
    for source in ("TUNE_WIZARD_API_KEY", "--api-key"):
        text = serve_cmd.banner("tiny", "0.0.0.0", 8000, source)
        assert 'curl http://127.0.0.1:8000/v1/chat/completions -H "Authorization: Bearer $TUNE_WIZARD_API_KEY"' \
            in text
        assert "api_key=os.environ['TUNE_WIZARD_API_KEY']" in text and "API key required" in text
        assert ("--api-key value" in text) == (source == "--api-key")


def test_serve_wires_the_options_into_the_app(tiny_model_dir, monkeypatch, capsys):
    """`tune-wizard serve` up to uvicorn's run, which hands the app over instead of listening."""
    import uvicorn
    from fastapi.testclient import TestClient

    from tests.e2e._export_fixtures import free_port
    from wizard.cli import main

    got = {}

    def fake_run(self, *args, **kwargs):
        got["app"], self.started = self.config.app, True

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setenv("TUNE_WIZARD_API_KEY", "env-key")
    assert main(["serve", str(tiny_model_dir), "--port", str(free_port()), "--model-name", "tiny",
                 "--max-queue", "3", "--queue-timeout", "7.5", "--api-key", "flag-key"]) == 0
    out = capsys.readouterr()
    assert "API key required" in out.out and "--api-key value" in out.out and "warning" not in out.err
    queue = got["app"].state.queue
    assert (queue.max_waiting, queue.timeout) == (3, 7.5)
    with TestClient(got["app"]) as client:
        assert client.get("/v1/models", headers={"Authorization": "Bearer flag-key"}).status_code == 200
        assert client.get("/v1/models", headers={"Authorization": "Bearer env-key"}).status_code == 401

    monkeypatch.delenv("TUNE_WIZARD_API_KEY")
    assert main(["serve", str(tiny_model_dir), "--port", str(free_port()), "--host", "0.0.0.0"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: listening on every address of this machine" in err and "without an API key" in err
    with TestClient(got["app"]) as client:
        assert client.get("/v1/models").status_code == 200


@pytest.mark.parametrize("args", [["--max-queue", "-1"], ["--queue-timeout", "0"], ["--queue-timeout", "nan"],
                                  ["--api-key", ""]])
def test_bad_options_are_refused_before_loading(args, capsys):
    from wizard.cli import main

    assert main(["serve", "no-such-model", *args]) == 2
    err = capsys.readouterr().err
    assert args[0] in err and "loading" not in err
