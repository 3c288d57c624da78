"""`tune-wizard export REF --gguf TYPE`: load (and merge) a run or a model, name it, write the GGUF file."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from wizard import run_folder as rf
from wizard.errors import UserError
from wizard.export.gguf_writer import FILE_TYPES, Meta, write_gguf

# general.* keys a source GGUF may carry that a model folder has no place for; copied through when known.
_CARRIED = ("organization", "license", "languages")


def _source_gguf(folder: Path) -> Path | None:
    """The GGUF file a cached model folder was converted from (model_source.gguf_to_folder notes it)."""
    try:
        path = Path(json.loads((Path(folder) / "source.json").read_text())["gguf"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return path if path.is_file() else None


def _read_general(gguf_path: Path) -> dict:
    import gguf

    reader = gguf.GGUFReader(gguf_path)
    out = {}
    for key in ("general.name", "general.basename", "general.finetune", "tokenizer.ggml.pre",
                *(f"general.{k}" for k in _CARRIED)):
        field = reader.get_field(key)
        if field is not None:
            value = field.contents()
            out[key] = value
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.rsplit("/", 1)[-1]).strip("-") or "model"


def describe(ref: str) -> tuple[Meta, Path]:
    """general.* metadata for `ref`, and the folder its base model was loaded from."""
    from wizard.inference.loading import model_files

    files = model_files(ref)
    base_folder, spec = files.weights, files.spec
    if spec is not None:
        base_name, finetune, name = spec.model.id, spec.name, spec.name
    else:
        base_name, finetune, name = ref, None, _slug(ref)
    source = _source_gguf(base_folder)
    general = _read_general(source) if source else {}
    meta = Meta(name=name, basename=general.get("general.basename") or _slug(base_name).lower(),
                finetune=finetune, fallback_pre=general.get("tokenizer.ggml.pre"),
                extra={k: general[f"general.{k}"] for k in _CARRIED if f"general.{k}" in general})
    if spec is None and general:  # the bundled model itself: keep its own names
        meta.name = general.get("general.name", meta.name)
        meta.finetune = general.get("general.finetune")
    return meta, base_folder


def default_path(ref: str, meta: Meta, ftype: str, size_label: str) -> Path:
    import gguf

    fname = gguf.naming_convention(None, meta.basename, meta.finetune if rf.is_run_dir(Path(ref)) else None,
                                   None, size_label, ftype.upper()) + ".gguf"
    return (Path(ref) if rf.is_run_dir(Path(ref)) else Path.cwd()) / fname


def export_gguf(ref: str, ftype: str, out: Path | None = None, force: bool = False, log=print) -> Path:
    import gguf

    from wizard.inference.loading import load_for_inference

    if ftype not in FILE_TYPES:
        raise UserError(f"--gguf {ftype}: expected one of {', '.join(FILE_TYPES)}")
    if out is not None:
        out = Path(out)
        if out.is_dir():
            raise UserError(f"--out {out}: is a folder; give the GGUF file's path, e.g. {out / 'model.gguf'}")
        _check_file(out, force)
    meta, _ = describe(ref)
    t0 = time.time()
    log(f"loading {ref} ...")
    # The inference default: fp32 on the CPU, so the merge and the quantization each round once; bf16 on a GPU.
    loaded = load_for_inference(ref, merge=True)
    if out is None:
        params = sum(p.numel() for n, p in loaded.model.named_parameters() if "lm_head" not in n
                     or not loaded.model.config.tie_word_embeddings)
        out = default_path(ref, meta, ftype, gguf.size_label(params, 0, 0, 0))
        _check_file(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    if ftype == "q4_0":
        log("note: q4_0 changes answers noticeably on small models; check it with `tune-wizard chat` on the "
            "merged model beside llama.cpp's output, or use q8_0")
    log(f"writing {out} ({ftype}) ...")
    write_gguf(loaded.model, loaded.tokenizer, out, ftype, meta, log=log)
    log(f"GGUF written to {out} ({out.stat().st_size / 2**20:.0f} MiB, {time.time() - t0:.1f} s)")
    return out


def _check_file(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise UserError(f"--out {path}: the file exists", hint="choose another --out, or add --force to replace it")
