"""`tune-wizard download`: a real download from a hub on 127.0.0.1 (tests.hub_server), in-process through
wizard.cli.main: where it is saved and which files; the folder a spec can point at; bad arguments exit 2."""
from __future__ import annotations

import json

import huggingface_hub.constants
import pytest

from tests.hub_server import HubServer
from wizard import spec as specmod
from wizard.cli import main

CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000, "max_position_embeddings": 512}
FILES = {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": b"weights", "tokenizer.json": b"{}",
         "pytorch_model.bin": b"old weights", "README.md": b"# tiny"}


@pytest.fixture
def hub(monkeypatch, tmp_path):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "USE_MODELSCOPE_HUB", "TUNE_WIZARD_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with HubServer(models={"owner/tiny": FILES}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_download_to_a_folder_keeps_what_training_reads_and_says_so(hub, tmp_path, capsys):
    to = tmp_path / "models" / "tiny"
    assert main(["download", "owner/tiny", "--to", str(to)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in to.iterdir() if not p.name.startswith(".")) == [
        "config.json", "model.safetensors", "tokenizer.json"]  # not the .bin copy, not the README
    assert f"saved in {to}" in out and "config.json" in out and "3 files" in out
    # A spec can point at the folder.
    spec = specmod.from_dict({"model": {"id": str(to), "hub": "local"}, "data": {"train": ["x.jsonl"]}},
                             source="test")
    from wizard.estimate import shape_for_model

    assert shape_for_model(spec.model.id).context == 512
    # Again into the same folder (a previous download): fine; --include picks files.
    assert main(["download", "owner/tiny", "--to", str(to), "--include", "README.md"]) == 0
    assert (to / "README.md").read_bytes() == b"# tiny"


def test_download_without_to_lands_in_the_cache(hub, tmp_path, capsys):
    assert main(["download", "owner/tiny"]) == 0
    out = capsys.readouterr().out
    assert "saved in " + str(tmp_path / "hf-cache") in out.replace("\n", "")


def test_bad_arguments_exit_2_and_touch_nothing(hub, tmp_path, capsys, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["download", "owner/tiny", "--to", str(mine)]) == 2
    assert "holds other files" in capsys.readouterr().err and [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert main(["download", "not an id"]) == 2
    assert "not a catalog alias or a hub id" in capsys.readouterr().err
    assert main(["download", "owner/missing", "--to", str(tmp_path / "new")]) == 2
    assert "has no model 'owner/missing'" in capsys.readouterr().err and not (tmp_path / "new").exists()
    # Something at HF_ENDPOINT that is not a hub (a proxy page): said at once, with the fix.
    with HubServer(gateway=True) as gateway:
        monkeypatch.setenv("HF_ENDPOINT", gateway.url)
        assert main(["download", "qwen2.5-0.5b-instruct", "--to", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "the Hugging Face hub could not be reached" in err and "HF_ENDPOINT" in err
    assert not (tmp_path / "x").exists()


def test_the_wizard_downloads_now_when_asked_and_the_spec_trains_from_the_folder(hub, tmp_path, monkeypatch):
    from tests.unit.test_init_flow import wizard_keys

    monkeypatch.chdir(tmp_path)
    answers = {"hub": "huggingface", "hf_endpoint": "", "model": "owner/tiny", "task": "sft-lora",
               "dataset": "bundled:general_chat", "use_recommended": True, "output_dir": "runs", "name": "t"}
    # Download now? y; save it in: Enter (models/tiny); the review: Write.
    path, _, screen = wizard_keys(tmp_path, answers, "y" + "\r" + "\r", hubs=True)
    folder = (tmp_path / "models" / "tiny").resolve()
    spec = specmod.load(path)
    assert (spec.model.id, spec.model.hub) == (str(folder), "local")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "config.json", "model.safetensors", "tokenizer.json"]
    assert "saved in ./models/tiny: config.json, model.safetensors, tokenizer.json" in screen
