"""Hub checks through huggingface_hub and modelscope, against a real HTTP hub on 127.0.0.1 (tests/hub_server.py):
a repository that exists, one that does not, a closed port, a server that never answers, a proxy page, and the
offline flags. The model resolver, the shape lookup and the dataset loader all ask through wizard.hubs."""
from __future__ import annotations

import json
import platform
import socket
import time

import huggingface_hub.constants
import pytest

from tests.hub_server import HubServer, closed_port
from wizard import hubs
from wizard.data.load import load_examples
from wizard.errors import DataError, ModelError
from wizard.estimate.shape import shape_for_model
from wizard.model_source import resolve
from wizard.spec import DataSpec

# The ModelScope client's user agent asks platform.processor(), which runs `uname -p` once and caches it: asked
# here, at collection, so the conftest's process check does not count that as a process a test started.
platform.processor()

CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000, "max_position_embeddings": 512}
MODEL = {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": b"not read by these tests",
         "tokenizer.json": b"{}"}


@pytest.fixture(autouse=True)
def online(monkeypatch, tmp_path):
    """Every test starts with no offline flag and a hub cache of its own (not the user's)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "USE_MODELSCOPE_HUB",
                 "MODELSCOPE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture
def hub(monkeypatch):
    with HubServer(models={"owner/tiny": MODEL}, datasets={"owner/rows": {}}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_env_flags_hub_choice_and_id_pattern(monkeypatch):
    for value, on in (("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("", False),
                      ("no", False)):
        monkeypatch.setenv("USE_MODELSCOPE_HUB", value)
        assert hubs.env_on("USE_MODELSCOPE_HUB") is on
        assert hubs.which("auto") == ("modelscope" if on else "huggingface")
    assert hubs.which("huggingface") == "huggingface"
    assert hubs.is_repo_id("Qwen/Qwen2.5-7B-Instruct") and not hubs.is_repo_id("imdb")
    assert hubs.is_repo_id("imdb", bare_name_ok=True)
    for bad in ("a/b/c", "/abs/path", "owner/", "-x/y", "owner/na me"):
        assert not hubs.is_repo_id(bad, bare_name_ok=True), bad
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "mirror.example")
    assert hubs.endpoint("modelscope") == "https://mirror.example"
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://127.0.0.1:1/")
    assert hubs.endpoint("modelscope") == "http://127.0.0.1:1"


def test_exists_and_missing(hub):
    assert hubs.exists("huggingface", "owner/tiny") is True
    assert hubs.exists("huggingface", "owner/rows", "dataset") is True
    missing = hubs.ask("auto", "owner/nothing")
    assert missing.found is False and "has no model 'owner/nothing'" in missing.problem
    assert hubs.exists("huggingface", "owner/tiny", "dataset") is False  # a model is not a dataset
    assert "GET /api/models/owner/tiny" in hub.requests


def test_a_missing_model_is_named_with_the_fix(hub):
    with pytest.raises(ModelError) as e:
        resolve("owner/nothing")
    assert "model.id 'owner/nothing'" in str(e.value) and "has no model 'owner/nothing'" in str(e.value)
    assert "check the id" in e.value.hint and "model.hub: local" in e.value.hint
    with pytest.raises(ModelError) as e:
        shape_for_model("owner/nothing")
    assert "owner/nothing" in str(e.value) and "local folder" in e.value.hint


def test_download_then_offline_uses_the_cache_without_asking(hub, monkeypatch):
    folder = resolve("owner/tiny")
    assert json.loads((folder / "config.json").read_text()) == CONFIG
    assert shape_for_model("owner/tiny").hidden == 64
    asked = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.monotonic()
    assert resolve("owner/tiny") == folder
    assert shape_for_model("owner/tiny").layers == 2
    assert time.monotonic() - t0 < 2 and len(hub.requests) == asked  # the hub was not asked again
    with pytest.raises(ModelError) as e:
        resolve("owner/never-downloaded")
    assert "HF_HUB_OFFLINE is set" in str(e.value) and "not in the local cache" in str(e.value)
    assert len(hub.requests) == asked


def test_unreachable_fails_fast_with_the_offline_fix(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    t0 = time.monotonic()
    with pytest.raises(ModelError) as e:
        resolve("owner/tiny")
    assert "could not be reached (127.0.0.1:" in str(e.value) and "not in the local cache" in str(e.value)
    assert "no network?" in e.value.hint and "model.hub: local" in e.value.hint
    with pytest.raises(ModelError) as e:
        shape_for_model("owner/tiny")
    assert "could not be reached" in str(e.value) and "local folder" in e.value.hint
    with pytest.raises(DataError) as e:
        load_examples(DataSpec(train=["owner/rows"]))
    assert "could not be reached (127.0.0.1:" in str(e.value) and "local copy" in str(e.value)
    assert time.monotonic() - t0 < 15


def test_a_frozen_library_flag_does_not_outlive_the_environment(hub, monkeypatch):
    """huggingface_hub reads HF_HUB_OFFLINE once, at import: whichever test imported it first would decide for
    every later one. The lookups follow the environment at the time of the call instead."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # imported while a test was offline
    assert shape_for_model("owner/tiny").hidden == 64
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True  # put back as it was
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # imported while online
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(hub.requests)
    with pytest.raises(ModelError) as e:
        shape_for_model("owner/other")
    assert "HF_HUB_OFFLINE is set" in str(e.value) and len(hub.requests) == asked


def test_reachable_asks_both_hubs_at_their_endpoints(hub, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_DOMAIN", f"http://127.0.0.1:{closed_port()}")
    assert hubs.reachable(timeout=1.0) == {"huggingface": True, "modelscope": False}
    asked = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hubs.answers("huggingface") is False and len(hub.requests) == asked


def test_a_silent_server_costs_the_timeout_not_more(monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        t0 = time.monotonic()
        reply = hubs.ask("huggingface", "owner/tiny", timeout=0.5)
        assert time.monotonic() - t0 < 1.5
        assert reply.found is None and "could not be reached" in reply.problem
    finally:
        silent.close()


def test_a_proxy_page_that_answers_404_is_not_a_hub(monkeypatch):
    with HubServer(gateway=True) as gateway:
        monkeypatch.setenv("HF_ENDPOINT", gateway.url)
        reply = hubs.ask("huggingface", "owner/tiny")
        assert reply.found is None and "HTTP 404" in reply.why
        assert hubs.answers("huggingface", timeout=1.0) is False


def test_modelscope_closed_port_fails_fast(monkeypatch):
    monkeypatch.setenv("MODELSCOPE_DOMAIN", f"http://127.0.0.1:{closed_port()}")
    hubs.ask("modelscope", "owner/warm-up", timeout=0.1)  # the client's import is not what is timed
    t0 = time.monotonic()
    reply = hubs.ask("modelscope", "owner/tiny", timeout=1.0)
    assert time.monotonic() - t0 < 2.5
    assert reply.found is None and reply.problem.startswith("the ModelScope hub could not be reached (127.0.0.1:")
