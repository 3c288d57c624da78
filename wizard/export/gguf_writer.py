"""Write a Hugging Face causal LM (already merged) as a GGUF file for llama.cpp, Ollama and LM Studio.

Follows llama.cpp's convert_hf_to_gguf.py for the architectures it supports here (llama, qwen2): the same
metadata keys, tensor names from gguf-py's TensorNameMap, q/k rows of llama permuted into llama.cpp's rope
layout (transformers' GGUF loader undoes exactly that permutation), 1-D tensors kept in F32, quantization
with gguf-py's reference quantizers. Tensors are converted and written one at a time, so memory stays at
the model plus one tensor.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
import torch

from wizard.errors import UserError
from wizard.export.gguf_tokenizer import add_vocab, build_vocab

ARCHES = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}
QT = gguf.GGMLQuantizationType
FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
              "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
# Weight type per file type; q4_0 keeps the embedding/output matrix at 8 bits, as llama-quantize keeps the
# output at a higher precision (it uses Q6_K, which gguf-py cannot quantize): small models fall apart otherwise.
_MAIN = {"f16": QT.F16, "q8_0": QT.Q8_0, "q4_0": QT.Q4_0}
_EMBED = {"f16": QT.F16, "q8_0": QT.Q8_0, "q4_0": QT.Q8_0}


@dataclass
class Meta:
    """general.* metadata: names as llama.cpp's converter writes them, plus what a source GGUF carried."""
    name: str
    basename: str | None = None
    finetune: str | None = None
    extra: dict = field(default_factory=dict)   # organization, license, languages from the source GGUF
    fallback_pre: str | None = None            # tokenizer.ggml.pre of the source GGUF


def check_arch(config) -> str:
    model_type = getattr(config, "model_type", "?")
    if model_type not in ARCHES:
        raise UserError(f"GGUF export supports the llama and qwen2 architectures; this model is '{model_type}'",
                        hint="export with --merge and convert that folder with llama.cpp's convert_hf_to_gguf.py")
    return model_type


def _rope(config) -> tuple[float, dict]:
    params = dict(getattr(config, "rope_parameters", None) or {})
    if "full_attention" in params:  # per-layer-type form
        params = dict(params["full_attention"])
    scaling = params or dict(getattr(config, "rope_scaling", None) or {})
    theta = params.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    return float(theta), scaling


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def add_hparams(writer: gguf.GGUFWriter, config, model_type: str) -> list[tuple[str, np.ndarray]]:
    """Architecture metadata; returns extra tensors llama.cpp expects (llama3 rope factors)."""
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    theta, scaling = _rope(config)
    writer.add_rope_freq_base(theta)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    hd = head_dim(config)
    if hd != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(hd)
        writer.add_value_length(hd)
    extra: list[tuple[str, np.ndarray]] = []
    kind = scaling.get("rope_type", scaling.get("type", "default")) or "default"
    if model_type == "llama":
        writer.add_vocab_size(config.vocab_size)
        writer.add_rope_dimension_count(hd)
        if kind == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(scaling["factor"])
        elif kind == "llama3":
            extra.append((gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight",
                          llama3_rope_factors(theta, hd, scaling)))
        elif kind != "default":
            raise UserError(f"rope scaling '{kind}' of this llama model is not supported by the GGUF writer",
                            hint="export with --merge and convert with llama.cpp's convert_hf_to_gguf.py")
    else:
        if kind == "yarn":
            writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            writer.add_rope_scaling_factor(scaling["factor"])
            writer.add_rope_scaling_orig_ctx_len(scaling["original_max_position_embeddings"])
        elif kind != "default":
            raise UserError(f"rope scaling '{kind}' of this qwen2 model is not supported by the GGUF writer",
                            hint="export with --merge and convert with llama.cpp's convert_hf_to_gguf.py")
    return extra


def llama3_rope_factors(theta: float, dim: int, scaling: dict) -> np.ndarray:
    """llama.cpp applies Llama 3.1's frequency scaling from a `rope_freqs` tensor; same formula as its converter."""
    freqs = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = scaling.get("factor", 8.0)
    low, high = scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
    old_ctx = scaling.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def permute_qk(w: torch.Tensor, n_head: int, n_head_kv: int | None) -> torch.Tensor:
    """llama.cpp's LlamaModel.permute: HF's rotate-half rope layout to llama.cpp's interleaved one."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def plan_tensors(model, model_type: str) -> Iterator[tuple[str, str, torch.Tensor]]:
    """(gguf name, hf name, tensor) for every weight to write, in the model's order."""
    config = model.config
    name_map = gguf.get_tensor_name_map(ARCHES[model_type], config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd as the output when there is no output.weight
        base, dot, suffix = hf_name.rpartition(".")
        gguf_base = name_map.get_name(base) if suffix in ("weight", "bias") else None
        if gguf_base is None:
            raise UserError(f"tensor {hf_name} has no GGUF name for {model_type}; the model is not a plain "
                            f"{model_type} checkpoint",
                            hint="export with --merge and convert with llama.cpp's convert_hf_to_gguf.py")
        if model_type == "llama":
            if base.endswith("q_proj"):
                tensor = permute_qk(tensor, config.num_attention_heads, config.num_attention_heads)
            elif base.endswith("k_proj"):
                tensor = permute_qk(tensor, config.num_attention_heads, config.num_key_value_heads)
        yield f"{gguf_base}.{suffix}", hf_name, tensor


def tensor_type(gguf_name: str, shape: tuple, ftype: str) -> gguf.GGMLQuantizationType:
    if len(shape) <= 1 or gguf_name.endswith("_norm.weight"):
        return QT.F32
    wanted = _EMBED[ftype] if gguf_name.split(".")[0] in ("token_embd", "output") else _MAIN[ftype]
    block, _ = gguf.GGML_QUANT_SIZES[wanted]
    if shape[-1] % block:  # rows that don't split into blocks: the converter falls back to F16 too
        return QT.F16
    return wanted


def encode(tensor, qtype) -> np.ndarray:
    data = tensor.detach().to("cpu", torch.float32).numpy() if isinstance(tensor, torch.Tensor) else tensor
    if qtype == QT.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == QT.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


def nbytes(shape: tuple, qtype) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape)) // block * size


def write_gguf(model, tokenizer, path: Path, ftype: str, meta: Meta, log=print) -> Path:
    """Write `model` + `tokenizer` to `path` as GGUF of `ftype` (f16, q8_0, q4_0); returns the path."""
    if ftype not in FILE_TYPES:
        raise UserError(f"--gguf {ftype}: expected one of {', '.join(FILE_TYPES)}")
    config = model.config
    model_type = check_arch(config)
    vocab_size = model.get_input_embeddings().weight.shape[0]
    vocab = build_vocab(tokenizer, config, vocab_size, meta.fallback_pre)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[ARCHES[model_type]])
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(meta.name)
        for key, value in meta.extra.items():
            getattr(writer, f"add_{key}")(value)
        if meta.finetune:
            writer.add_finetune(meta.finetune)
        if meta.basename:
            writer.add_basename(meta.basename)
        extra = add_hparams(writer, config, model_type)
        writer.add_file_type(FILE_TYPES[ftype])
        add_vocab(writer, vocab)
        if model_type == "llama":
            writer.add_add_space_prefix(bool(vocab.add_prefix_space))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        plan = [(g, h, t, tensor_type(g, tuple(t.shape), ftype)) for g, h, t in plan_tensors(model, model_type)]
        plan += [(g, g, t, QT.F32) for g, t in extra]
        total = sum(int(np.prod(t.shape)) for g, _, t, _ in plan if not g.startswith("rope_freqs"))
        writer.add_size_label(gguf.size_label(total, 0, 0, 0))
        for g, _, t, qt in plan:
            writer.add_tensor_info(g, tuple(t.shape), np.dtype(np.float32), nbytes(tuple(t.shape), qt), raw_dtype=qt)
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, (_, _, t, qt) in enumerate(plan, 1):
            writer.write_tensor_data(encode(t, qt))
            if i % 50 == 0 or i == len(plan):
                log(f"  {i}/{len(plan)} tensors written")
        writer.close()
        os.replace(tmp, path)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return path
