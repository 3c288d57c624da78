"""A RunSpec as YAML with a comment on every field, for people who open the file to change it.

The text must load back into the same RunSpec through wizard.spec.load (a unit test checks it), so values
are written with PyYAML's own scalar dumper and only the layout and comments are ours.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from wizard.spec import DatasetSource, RunSpec

COMMENTS = {
    "version": "spec format version",
    "name": "names the run folders (<output_dir>/<name>-<time>/)",
    "model": "the base model",
    "model.id": "catalog alias, hub id (owner/name), local folder or .gguf file",
    "model.hub": "auto | huggingface | modelscope | local (never download)",
    "model.revision": "a branch, tag or commit of the model repository",
    "model.adapter": "start from this adapter: a finished SFT run folder or an adapter folder",
    "model.trust_remote_code": "run code shipped in the model repo (trusted repos only)",
    "task": "sft: learn from example chats | dpo: from chosen/rejected pairs",
    "method": "qlora: 4-bit base + adapter | lora: 16-bit + adapter | full",
    "lora": "the LoRA adapter that is trained (methods lora and qlora)",
    "lora.r": "adapter size: 8 is usual; 16-64 learn more, use more memory",
    "lora.alpha": "scales the adapter's update by alpha / r",
    "lora.dropout": "dropout on the adapter's input; regularises small datasets",
    "lora.target_modules": "layers with an adapter: auto (family default), all-linear, list",
    "quant": "how the base model is loaded in 4-bit (method qlora)",
    "quant.bits": "4 (QLoRA) or 8",
    "quant.type": "nf4 (the QLoRA paper's) or fp4",
    "quant.double_quant": "quantize the quantization constants too (~0.4 bit/param saved)",
    "quant.compute_dtype": "dtype of the matrix products: auto takes bf16 where the GPU has it",
    "data": "the training data",
    "data.train": "files or hub ids; owner/name#N samples N rows",
    "data.eval": "held-out datasets for eval loss (empty: see eval_split)",
    "data.format": "auto detects it; or messages, sharegpt, alpaca, preference, ...",
    "data.max_length": "tokens per row; longer rows are handled by overflow",
    "data.overflow": "a row over max_length: truncate it, or drop it",
    "data.eval_split": "share of the training rows held out for eval loss (0: none)",
    "data.packing": "pack several short rows into one sequence: faster on short data",
    "data.system": "a system prompt added to rows that have none",
    "data.assistant_only_loss": "learn from the assistant's turns only (false: the whole text)",
    "data.max_errors": "stop listing malformed rows after this many",
    "data.train[].path": "a file or a hub dataset id",
    "data.train[].format": "this dataset's format (auto: detect)",
    "data.train[].hub": "auto | huggingface | modelscope | local",
    "data.train[].split": "the hub dataset's split",
    "data.train[].subset": "the hub dataset's subset (configuration)",
    "data.train[].columns": "rename columns for the format, e.g. {question: instruction}",
    "data.train[].sample": "take N rows",
    "train": "the training loop",
    "train.epochs": "passes over the dataset",
    "train.max_steps": "stop after this many optimizer steps (-1: run the epochs)",
    "train.batch_size": "rows per forward pass",
    "train.grad_accum": "passes per update; batch_size x grad_accum = total batch",
    "train.lr": "peak learning rate",
    "train.scheduler": "how the learning rate falls after warmup",
    "train.warmup_ratio": "share of the steps spent ramping the learning rate up",
    "train.optimizer": "adamw_torch; 8-bit variants save optimizer memory",
    "train.weight_decay": "pulls weights toward zero",
    "train.max_grad_norm": "gradients are clipped to this norm",
    "train.seed": "same seed, same data order and initialisation",
    "train.logging_steps": "a log line (loss, lr, memory, speed) every N steps",
    "train.save_steps": "a checkpoint every N steps (what --resume continues from)",
    "train.save_total_limit": "keep only the newest N checkpoints",
    "train.eval_steps": "eval loss every N steps (default: with each save)",
    "train.gradient_checkpointing": "recompute activations: less memory, slower (auto | on | off)",
    "train.precision": "auto: bf16 where the GPU has it, else fp16; fp32 on CPU",
    "dpo": "DPO settings (task dpo)",
    "dpo.beta": "higher keeps the model closer to the reference",
    "dpo.loss_type": "sigmoid is the DPO paper's loss",
    "dpo.max_prompt_length": "tokens kept of each prompt",
    "dpo.max_completion_length": "tokens kept of each answer",
    "output_dir": "run folders go here",
}
COMMENT_COLUMN = 34
MAX_WIDTH = 110


def comment_for(path: str) -> str:
    """The comment for a dotted field path; the pydantic description where we have none."""
    if path in COMMENTS:
        return COMMENTS[path]
    cls: Any = RunSpec
    parts = path.replace("[]", "").split(".")
    for part in parts[:-1]:
        cls = _sub_model(cls, part)
        if cls is None:
            return ""
    field = cls.model_fields.get(parts[-1]) if cls else None
    return (field.description or "") if field else ""


def _sub_model(cls: type[BaseModel], name: str) -> type[BaseModel] | None:
    field = cls.model_fields.get(name)
    if field is None:
        return None
    if name in ("train", "eval") and cls.__name__ == "DataSpec":
        return DatasetSource
    ann = field.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text


def _relevant(spec: RunSpec) -> dict:
    """The spec as a dict, minus sections the run won't read and optional fields left unset."""
    d = spec.to_dict()
    if spec.task != "dpo":
        d.pop("dpo")
    if spec.method != "qlora":
        d.pop("quant")
    if spec.method == "full":
        d.pop("lora")
    _drop_unset(d, RunSpec)
    return d


def _drop_unset(d: dict, cls: type[BaseModel]) -> None:
    for name, field in cls.model_fields.items():
        if name not in d:
            continue
        if d[name] is None and field.default is None:
            del d[name]
        elif d[name] == [] and name == "eval":
            del d[name]
        elif isinstance(d[name], dict) and d[name] == {} and name == "columns":
            del d[name]
        elif isinstance(d[name], dict):
            sub = _sub_model(cls, name)
            if sub is not None:
                _drop_unset(d[name], sub)


def _source(src: dict) -> Any:
    """A dataset source in the `path#N` shorthand when nothing else about it differs from the default."""
    rest = {k: v for k, v in src.items() if k not in ("path", "sample")}
    defaults = {k: f.default for k, f in DatasetSource.model_fields.items() if k not in ("path", "sample")}
    if all(v == defaults.get(k) or (v in ({}, None) and k in ("columns", "subset")) for k, v in rest.items()):
        return src["path"] + (f"#{src['sample']}" if src.get("sample") else "")
    return {k: v for k, v in src.items() if v not in (None, {})}


def _line(indent: int, key: str, value: str, comment: str) -> str:
    text = f"{' ' * indent}{key}:{(' ' + value) if value else ''}"
    if not comment:
        return text
    beside = text.ljust(COMMENT_COLUMN) + f"  # {comment}"
    if len(beside) <= MAX_WIDTH:
        return beside
    # Too long to sit beside the value: above it, at the key's indent (a "- " item keeps its dash below).
    pad = " " * (indent + (2 if key.startswith("- ") else 0))
    return f"{pad}# {comment}\n{text}" if not key.startswith("- ") else f"{text}  # {comment}"


def _emit(d: dict, path: str, indent: int, out: list) -> None:
    for key, value in d.items():
        full = f"{path}.{key}" if path else key
        comment = comment_for(full)
        if isinstance(value, dict) and value:
            out.append(_line(indent, key, "", comment))
            _emit(value, full, indent + 2, out)
        elif key in ("train", "eval") and path == "data":
            items = [_source(s) for s in value]
            if all(isinstance(i, str) for i in items):
                out.append(_line(indent, key, "", comment))
                out.extend(f"{' ' * (indent + 2)}- {scalar(i)}" for i in items)
            else:
                out.append(_line(indent, key, "", comment))
                for item in items:
                    if isinstance(item, str):
                        out.append(f"{' ' * (indent + 2)}- {scalar(item)}")
                        continue
                    for n, (k, v) in enumerate(item.items()):
                        lead = "- " if n == 0 else "  "
                        out.append(_line(indent + 2, lead + k, scalar(v), comment_for(f"{full}[].{k}")))
        else:
            out.append(_line(indent, key, scalar(value), comment))


def render(spec: RunSpec, header: str = "") -> str:
    out: list[str] = [f"# {h}" if h else "#" for h in header.splitlines()] if header else []
    _emit(_relevant(spec), "", 0, out)
    return "\n".join(out) + "\n"


def write(spec: RunSpec, path: str | Path, header: str = "") -> Path:
    """Write atomically: an interrupted write never leaves a half spec that looks complete."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_text(render(spec, header), encoding="utf-8")
    os.replace(tmp, p)
    return p
