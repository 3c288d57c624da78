"""`tune-wizard serve`: the real server in a subprocess, spoken to by the official openai client
(and by plain urllib for what a client library would refuse to send)."""
from __future__ import annotations

import json
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import cli
from tests.e2e._export_fixtures import export_run, http, serving, template_ids

pytestmark = pytest.mark.process
LIMIT = 64


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return export_run(tmp_path_factory)


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    """(base_url, port, log path, process) of `tune-wizard serve RUN_DIR` on a free localhost port."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with serving(run_dir, log, "--max-new-tokens-limit", str(LIMIT)) as (url, port, proc):
        yield url, port, log, proc


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server[0], api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def model_id(run_dir) -> str:
    return run_dir.name


def ask(client, model_id, prompt="Who are you?", **kw):
    return client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": prompt}],
                                          temperature=0, **{"max_tokens": 12, **kw})


def test_startup_line_shows_url_and_curl(server, model_id):
    _, port, log, _ = server
    text = log.read_text()
    assert f"serving {model_id} at http://127.0.0.1:{port}/v1" in text
    assert f"curl http://127.0.0.1:{port}/v1/chat/completions" in text
    assert "warning" not in text and "Authorization" not in text  # this machine only, no key: nothing to say


def test_binds_localhost_only(server):
    _, port, _, _ = server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # the address other machines would use
        s.connect(("10.255.255.255", 1))
        ip = s.getsockname()[0]
    if ip.startswith("127."):
        pytest.skip("this machine has no address besides loopback")
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((ip, port)) != 0, f"port {port} answers on {ip}"


def test_models_lists_the_run(client, model_id):
    models = client.models.list()
    assert [m.id for m in models.data] == [model_id]
    assert models.data[0].object == "model"


def test_chat_completion(client, model_id, run_dir):
    from transformers import AutoTokenizer

    got = ask(client, model_id)
    assert got.id.startswith("chatcmpl-") and got.object == "chat.completion" and got.model == model_id
    assert isinstance(got.created, int)
    choice = got.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    # 12 tokens: the limit, or fewer when the model ended its turn first (a trained run answers briefly).
    assert (choice.finish_reason == "length" and got.usage.completion_tokens == 12) or \
        (choice.finish_reason == "stop" and got.usage.completion_tokens < 12)
    tok = AutoTokenizer.from_pretrained(run_dir / "adapter")
    assert got.usage.prompt_tokens == len(template_ids(tok, [{"role": "user", "content": "Who are you?"}]))
    assert got.usage.total_tokens == got.usage.prompt_tokens + got.usage.completion_tokens


def test_streaming_gives_the_same_answer(client, model_id):
    whole = ask(client, model_id)
    plain = whole.choices[0].message.content
    chunks = list(ask(client, model_id, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 2  # really streamed
    assert text.strip() == plain
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_raw_stream_ends_with_done(server, model_id):
    status, headers, body = http(f"{server[0]}/chat/completions", json.dumps({
        "model": model_id, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True}).encode(),
        timeout=300)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line for line in body.decode().splitlines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_stop_string(client, model_id):
    words = ask(client, model_id).choices[0].message.content.split()
    stop = words[min(2, len(words) - 1)]
    got = ask(client, model_id, stop=[stop])
    assert stop not in got.choices[0].message.content
    assert got.choices[0].finish_reason == "stop"


def post(server, body, raw: str | None = None):
    status, _, answer = http(f"{server[0]}/chat/completions", (raw if raw is not None else json.dumps(body)).encode())
    return status, json.loads(answer)


@pytest.mark.parametrize("body,status,param", [
    ({"messages": None}, 400, "messages"),
    ({}, 400, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 42}]}, 400, "messages[0].content"),
    ({"messages": "hello"}, 400, "messages"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400, "temperature"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"}, 400, "max_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": LIMIT + 1}, 400, "max_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, 400, "stream"),
    ({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"}, 404, "model"),
])
def test_bad_requests_get_openai_errors(server, body, status, param):
    got_status, got = post(server, body)
    assert got_status == status, got
    err = got["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param and err["message"]
    if status == 404:
        assert err["code"] == "model_not_found"


def test_malformed_json_and_unknown_route(server):
    status, got = post(server, None, raw="{not json")
    assert status == 400 and got["error"]["code"] == "invalid_json"
    status, _, body = http(f"{server[0]}/nothing-here")
    assert status == 404 and json.loads(body)["error"]["message"]


def test_concurrent_requests_are_queued(client, model_id):
    def one(i):
        if i % 2:
            return "".join(c.choices[0].delta.content or "" for c in ask(client, model_id, max_tokens=6, stream=True)
                           if c.choices).strip()
        return ask(client, model_id, max_tokens=6).choices[0].message.content

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(4)))
    assert len(set(answers)) == 1 and answers[0], answers  # greedy: the same answer four times


def test_taken_port_is_refused_at_once(server, run_dir):
    _, port, _, _ = server
    r = cli("serve", str(run_dir), "--port", str(port), timeout=120)
    assert r.returncode == 2
    assert f"--port {port}: already in use" in r.stderr and "--port" in r.stderr
    assert "loading" not in r.stderr  # refused before the model load


def test_ctrl_c_stops_the_server(server):
    proc = server[3]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130  # the project's code for "interrupted"
    assert "Finished server process" in server[2].read_text()  # uvicorn shut down cleanly first
