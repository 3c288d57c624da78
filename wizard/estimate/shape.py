"""A model's shape, as much of its config as the memory estimate needs: from the catalog, a config.json, a
GGUF file's metadata, or a hub's config.json alone (never the weights)."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from wizard import hubs
from wizard.catalog import default_targets, lookup
from wizard.errors import ModelError

# Families whose decoder layer has four RMSNorms (before and after attention and MLP).
FOUR_NORMS = ("gemma2", "gemma3", "gemma3_text")
QK_NORM = ("qwen3", "qwen3_moe", "gemma3", "gemma3_text", "olmo2")
TIED_BY_DEFAULT = ("gemma", "gemma2", "gemma3", "gemma3_text", "gpt2", "gpt_neox")
NOT_GATED = ("gpt2", "gpt_neox", "bloom", "falcon", "phi", "opt", "gpt_bigcode", "starcoder2")


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool = False
    head_dim: int = 0              # 0: hidden // heads
    model_type: str = "llama"
    norms: int = 2
    qk_norm: bool = False
    softcap: float = 0.0
    attn_bias: bool = False
    gated: bool = True
    experts: int = 0
    experts_active: int = 0
    extra_params_b: float = 0.0
    context: int = 0
    targets: tuple = ("q_proj", "v_proj")

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hd

    @property
    def mlp_names(self) -> tuple[str, ...]:
        return tuple(n for n in projections(self) if n not in _ATTN_NAMES)

    @property
    def params(self) -> int:
        """Parameter count implied by the shape (text decoder plus extra_params_b)."""
        h, hd, qd, kvd = self.hidden, self.hd, self.q_dim, self.kv_dim
        projs = projections(self)
        linear = sum(i * o for i, o in projs.values())
        if self.experts:
            mlp = sum(i * o for n, (i, o) in projs.items() if n in self.mlp_names)
            linear += mlp * (self.experts - 1) + h * self.experts
        small = self.norms * h + (2 * hd if self.qk_norm else 0) + ((qd + 2 * kvd) if self.attn_bias else 0)
        return (self.layers * (linear + small) + h + self.vocab * h * (1 if self.tied else 2)
                + int(self.extra_params_b * 1e9))

    @property
    def params_b(self) -> float:
        return self.params / 1e9


_ATTN_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query_key_value", "dense", "wqkv", "wo")


def projections(s: Shape) -> dict[str, tuple[int, int]]:
    """Every linear layer of one decoder layer: name -> (in_features, out_features), named as the family
    names them (the names LoRA target_modules use)."""
    h, qd, kvd, i = s.hidden, s.q_dim, s.kv_dim, s.intermediate
    mt = s.model_type
    if mt == "phi3":
        return {"qkv_proj": (h, qd + 2 * kvd), "o_proj": (qd, h), "gate_up_proj": (h, 2 * i), "down_proj": (i, h)}
    if mt in ("chatglm", "glm"):
        return {"query_key_value": (h, qd + 2 * kvd), "dense": (qd, h), "dense_h_to_4h": (h, 2 * i),
                "dense_4h_to_h": (i, h)}
    if mt == "internlm2":
        return {"wqkv": (h, qd + 2 * kvd), "wo": (qd, h), "w1": (h, i), "w3": (h, i), "w2": (i, h)}
    attn = {"q_proj": (h, qd), "k_proj": (h, kvd), "v_proj": (h, kvd), "o_proj": (qd, h)}
    if not s.gated:
        return {**attn, "up_proj": (h, i), "down_proj": (i, h)}
    return {**attn, "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


_FIELDS = {f.name for f in fields(Shape)}


def as_shape(x: Shape | Mapping) -> Shape:
    if isinstance(x, Shape):
        return x
    if not isinstance(x, Mapping):
        raise TypeError(f"expected a Shape or a mapping, got {type(x).__name__}")
    missing = [k for k in ("hidden", "layers", "heads", "intermediate", "vocab") if k not in x]
    if missing:
        raise ModelError(f"model shape lacks {', '.join(missing)}", hint="give hidden, layers, heads, kv_heads, "
                         "intermediate, vocab and tied (recipes/models.yaml shows the form)")
    kw = {k: v for k, v in x.items() if k in _FIELDS}
    kw.setdefault("kv_heads", x["heads"])
    if "targets" in kw:
        kw["targets"] = tuple(kw["targets"])
    return Shape(**kw)


# ----------------------------------------------------------------------------- config.json

def _first(cfg: Mapping, *keys, default=None):
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def shape_from_config(config: str | os.PathLike | Mapping) -> Shape:
    """The shape of a transformers config: a dict, a config.json path, or the folder holding it."""
    where = "config"
    if not isinstance(config, Mapping):
        p = Path(config)
        if p.is_dir():
            p = p / "config.json"
        where = str(p)
        try:
            config = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{p}: no such file", hint="point at a model folder that holds config.json") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"{p}: not valid JSON ({exc})", hint="re-download the model's config.json") from None
    cfg = dict(config)
    outer_type = str(cfg.get("model_type", ""))
    if isinstance(cfg.get("text_config"), Mapping) and "hidden_size" not in cfg:
        cfg = {**cfg, **cfg["text_config"]}       # image-text models: the decoder is what trains
    mt = str(cfg.get("model_type") or outer_type or "llama")
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model", "dim")
    layers = _first(cfg, "num_hidden_layers", "num_layers", "n_layer", "n_layers")
    heads = _first(cfg, "num_attention_heads", "n_head", "n_heads")
    vocab = _first(cfg, "padded_vocab_size", "vocab_size")
    missing = [n for n, v in (("hidden_size", hidden), ("num_hidden_layers", layers),
                              ("num_attention_heads", heads), ("vocab_size", vocab)) if v is None]
    if missing:
        raise ModelError(f"{where}: no {', '.join(missing)}; the memory estimate needs them",
                         hint="is this a decoder-only language model's config.json?")
    kv = _first(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    if kv is None and cfg.get("multi_query_attention"):
        kv = cfg.get("multi_query_group_num")
    experts = int(_first(cfg, "num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    inter = _first(cfg, "moe_intermediate_size") if experts else None
    inter = inter or _first(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim", default=4 * hidden)
    tied = cfg.get("tie_word_embeddings")
    if tied is None:
        tied = mt in TIED_BY_DEFAULT
    head_dim = _first(cfg, "head_dim", "kv_channels", default=0) or 0
    family = {"chatglm": "chatglm", "glm": "chatglm"}.get(mt, mt)
    return Shape(
        hidden=int(hidden), layers=int(layers), heads=int(heads), kv_heads=int(kv or heads),
        intermediate=int(inter), vocab=int(vocab), tied=bool(tied),
        head_dim=int(head_dim) if int(head_dim) != int(hidden) // int(heads) else 0, model_type=family,
        norms=4 if mt in FOUR_NORMS else 2, qk_norm=mt in QK_NORM,
        softcap=float(cfg.get("final_logit_softcapping") or 0.0),
        attn_bias=bool(cfg.get("attention_bias") or cfg.get("add_qkv_bias") or mt in ("qwen2", "qwen2_moe")),
        gated=mt not in NOT_GATED, experts=experts,
        experts_active=int(_first(cfg, "num_experts_per_tok", "moe_topk", default=0) or 0) if experts else 0,
        context=int(_first(cfg, "max_position_embeddings", "seq_length", "n_positions", default=0) or 0),
        targets=tuple(default_targets(family)))


def shape_from_gguf(path: Path) -> Shape:
    """The shape from a GGUF file's metadata (no tensors read)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def val(key, default=None):
        f = reader.fields.get(key)
        if f is None:
            return default
        part = f.parts[f.data[0]] if f.data else None
        if part is None:
            return default
        return part.tolist()[0] if hasattr(part, "tolist") and len(part) == 1 else part

    arch = bytes(val("general.architecture", b"llama")).decode() if val("general.architecture") is not None else "llama"
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    cfg = {"model_type": arch, "hidden_size": val(f"{arch}.embedding_length"),
           "num_hidden_layers": val(f"{arch}.block_count"), "num_attention_heads": val(f"{arch}.attention.head_count"),
           "num_key_value_heads": val(f"{arch}.attention.head_count_kv"),
           "intermediate_size": val(f"{arch}.feed_forward_length"),
           "vocab_size": len(tokens.data) if tokens is not None else val(f"{arch}.vocab_size"),
           "max_position_embeddings": val(f"{arch}.context_length"),
           "tie_word_embeddings": "output.weight" not in {t.name for t in reader.tensors}}
    return shape_from_config(cfg)


def shape_for_model(model_id: str, hub: str = "auto", revision: str | None = None) -> Shape:
    """A model's shape with no weights downloaded: a catalog entry, a local folder / config.json / .gguf,
    or the config.json alone from the hub."""
    entry = lookup(model_id)
    if entry is not None and entry.shape:
        return as_shape({**entry.shape, "context": entry.context, "targets": entry.target_modules})
    path = Path(model_id).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return shape_from_gguf(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return shape_from_config(path / "config.json")
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            return shape_from_gguf(ggufs[0])
        raise ModelError(f"{path}: no config.json in this folder", hint="point at the folder that holds config.json")
    if path.is_file() and path.name.endswith(".json"):
        return shape_from_config(path)
    if hub == "local" or not hubs.is_repo_id(model_id):
        raise ModelError(f"model '{model_id}': not a catalog alias and not a local model folder",
                         hint="run `tune-wizard recipes --models` for the catalog, or give a folder with config.json")
    return shape_from_config(_hub_config(model_id, hub, revision))


def _hub_config(repo_id: str, hub: str, revision: str | None) -> Any:
    """The model's config.json from the hub, or from the hub client's cache when the hub cannot be asked
    (no network, HF_HUB_OFFLINE): seconds, never the clients' minute of retries."""
    hub = hubs.which(hub)
    hint = "pass a local folder that holds the model's config.json (model.id: /path/to/model)"
    reply = hubs.ask(hub, repo_id)
    if reply.found is False:
        raise ModelError(f"model '{repo_id}': {reply.problem}, so there is no config.json to read", hint=hint)
    cache_only = reply.found is None
    try:
        if hub == "modelscope":
            from modelscope.hub.file_download import model_file_download

            return Path(model_file_download(repo_id, "config.json", revision=revision or "master",
                                            endpoint=hubs.endpoint(hub), local_files_only=cache_only))
        from huggingface_hub import hf_hub_download

        with hubs.hf_offline(cache_only):
            return Path(hf_hub_download(repo_id, "config.json", revision=revision, endpoint=hubs.endpoint(hub),
                                        local_files_only=cache_only))
    except Exception as exc:  # noqa: BLE001 - offline, 404, gated, auth: all mean "no config here"
        if cache_only:
            raise ModelError(f"model '{repo_id}': {reply.problem}, and its config.json is not in the local cache",
                             hint=hint) from None
        text = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise ModelError(f"model '{repo_id}': could not fetch its config.json from {hubs.TITLES[hub]} "
                         f"({type(exc).__name__}: {text})", hint=hint) from None
