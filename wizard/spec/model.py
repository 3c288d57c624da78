"""The run spec: the one validated description of a fine-tuning run.

The wizard, `--set` overrides and hand-written YAML all end here; the engine reads nothing else.
Field names are a public contract (recipes, saved run folders and tests depend on them): add fields,
never rename them. Each field carries every fact about itself (description, default, choices, bounds):
the wizard's questions, the commented YAML and the error messages all read them from here
(wizard.spec.fields), so a description is written once, as the comment a person reads in the YAML.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wizard.errors import SpecError
from wizard.run_folder import write_text_atomic
from wizard.spec.aliases import ALIASES

SPEC_VERSION = 1
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HUBS = Literal["auto", "huggingface", "modelscope", "local"]
HUB_HELP = "auto: HF (ModelScope if USE_MODELSCOPE_HUB=1); local: never download"


class _Strict(BaseModel):
    # Unknown keys are errors: a typo such as `learning_rate:` must not silently train with defaults.
    # NaN and infinities are never a setting: `epochs: .inf` would overflow, NaN compares false to every bound.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelSpec(_Strict):
    id: str = Field(description="catalog alias, hub id (owner/name), local folder or .gguf file")
    hub: HUBS = Field("auto", description=HUB_HELP)
    revision: str | None = Field(None, description="a branch, tag or commit of the model repository")
    # DPO starts from it; SFT continues training it.
    adapter: str | None = Field(None, description="start from this adapter: a finished SFT run or an adapter "
                                                  "folder")
    trust_remote_code: bool = Field(False, description="run code shipped in the model repo (trusted repos only)")


class LoraSpec(_Strict):
    r: int = Field(8, ge=1, le=1024, description="adapter size: 8 is usual; 16-64 learn more, use more memory")
    alpha: float = Field(32, gt=0, description="scales the adapter's update by alpha / r (32 with r 8 is common)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter's input: 0.05 is usual, 0 for "
                                                         "tiny datasets")
    target_modules: Literal["auto", "all-linear"] | list[str] = Field(
        "auto", description="layers with an adapter: auto (family default), all-linear, or a list")

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("must name at least one module, or be 'all-linear' or 'auto'")
        return v


class QuantSpec(_Strict):
    bits: Literal[4, 8] = Field(4, description="4 (QLoRA) or 8")
    type: Literal["nf4", "fp4"] = Field("nf4", description="nf4 (the QLoRA paper's) or fp4")
    double_quant: bool = Field(True, description="quantize the quantization constants too (~0.4 bit/param saved)")
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="dtype of the matrix products: auto takes bf16 where the GPU has it")


FORMATS = Literal["auto", "alpaca", "sharegpt", "messages", "query_response", "prompt_completion", "preference"]


class DatasetSource(_Strict):
    """One dataset: a local file, or a hub id with an optional `#N` row sample."""

    path: str = Field(description="a file or a hub dataset id")
    format: FORMATS = Field("auto", description="this dataset's format (auto: detect)")
    hub: HUBS = Field("auto", description=HUB_HELP)
    split: str = Field("train", description="the hub dataset's split")
    subset: str | None = Field(None, description="the hub dataset's subset (configuration)")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="rename columns for the format, e.g. {question: instruction}")
    sample: int | None = Field(None, ge=1, description="take N rows")


class DataSpec(_Strict):
    train: list[DatasetSource] = Field(description="files or hub ids; owner/name#N samples N rows")
    eval: list[DatasetSource] = Field(default_factory=list,
                                      description="held-out datasets for eval loss (empty: see eval_split)")
    format: FORMATS = Field("auto", description="auto detects it; or messages, sharegpt, alpaca, preference, ...")
    max_length: int = Field(2048, ge=16, description="tokens per row (longer: see overflow); memory grows with it")
    # Cutting keeps the row but the answer may lose its end; dropping loses the row.
    overflow: Literal["truncate", "drop"] = Field("truncate", description="a row over max_length: truncate it, "
                                                                          "or drop it")
    eval_split: float = Field(0.0, ge=0, lt=1, description="share of the training rows held out for eval loss "
                                                           "(0: none)")
    packing: bool = Field(False, description="pack short rows into max_length sequences (best fit); with "
                                             "batching tokens rows are already unpadded")
    system: str | None = Field(None, description="a system prompt added to rows that have none")
    assistant_only_loss: bool = Field(True, description="learn from the assistant's turns only (false: the "
                                                        "whole text)")
    max_errors: int = Field(20, ge=1, description="stop listing malformed rows after this many")

    @field_validator("train", "eval", mode="before")
    @classmethod
    def _sources(cls, v):
        # `train: file.jsonl` and `train: [a.jsonl, hub/id#100]` are shorthand for source objects.
        if v is None:
            return []
        if isinstance(v, (str, dict)):
            v = [v]
        out = []
        for item in v:
            if isinstance(item, str):
                path, _, n = item.partition("#")
                src: dict[str, Any] = {"path": path}
                if n:
                    if not n.isdigit() or int(n) < 1:
                        raise ValueError(f"'{item}': the part after '#' must be a row count, e.g. {path}#500")
                    src["sample"] = int(n)
                out.append(src)
            else:
                out.append(item)
        return out

    @field_validator("train")
    @classmethod
    def _train_non_empty(cls, v):
        if not v:
            raise ValueError("name at least one training dataset")
        return v


class TrainSpec(_Strict):
    epochs: float = Field(3, gt=0, description="passes over the dataset: 3 is usual, fewer for large datasets")
    max_steps: int = Field(-1, ge=-1, description="stop after this many optimizer steps (-1: run the epochs)")
    # SFT only (DPO batches pairs): tokens is the fast default on real data, whose rows are mostly short.
    batching: Literal["tokens", "rows"] = Field(
        "tokens", description="tokens: each forward pass takes whole rows, unpadded, up to batch_tokens | rows: "
                              "batch_size rows padded to the longest (SFT; DPO always batches rows)")
    batch_tokens: int | Literal["auto"] = Field(
        "auto", description="tokens per forward pass with batching tokens; auto: the most that fits the GPU "
                            "(tune-wizard estimate explains it)")
    batch_size: int = Field(1, ge=1, description="rows per forward pass with batching rows (and DPO pairs); raise it "
                                                 "only if memory allows")
    grad_accum: int | Literal["auto"] = Field(
        "auto", description="forward passes per update; auto: about 16 rows per update with batching rows, "
                            "about 16,384 tokens with batching tokens")
    lr: float = Field(2e-4, gt=0, lt=1, description="peak learning rate: 2e-4 suits LoRA/QLoRA, full training "
                                                    "~10x less")
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts",
                       "polynomial"] = Field("cosine", description="how the learning rate falls after warmup")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="share of the steps spent ramping the learning "
                                                              "rate up")
    optimizer: Literal["adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit",
                       "sgd", "adafactor"] = Field("adamw_torch", description="adamw_torch is usual; the 8-bit "
                                                                              "ones save optimizer memory")
    weight_decay: float = Field(0.0, ge=0, description="pulls weights toward zero (0 is usual for LoRA)")
    max_grad_norm: float = Field(1.0, ge=0, description="gradients are clipped to this norm")
    # numpy's seeds are 0 .. 2**32 - 1
    seed: int = Field(42, ge=0, le=2**32 - 1, description="same seed, same data order and initialisation")
    logging_steps: int = Field(5, ge=1, description="a log line (loss, lr, memory, speed) every N steps")
    save_steps: int = Field(100, ge=1, description="a checkpoint every N steps (what --resume continues from)")
    save_total_limit: int | None = Field(3, ge=1, description="keep only the newest N checkpoints")
    eval_steps: int | None = Field(None, ge=1, description="eval loss every N steps (default: with each save)")
    gradient_checkpointing: Literal["auto", "on", "off"] = Field(
        "auto", description="recompute activations: less memory, ~30% slower; auto decides at start")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto: bf16 where the GPU has it, else fp16; fp32 on CPU")
    attention: Literal["auto", "varlen", "sdpa", "eager"] = Field(
        "auto", description="attention kernel: auto takes varlen (no padding, no mask) on a GPU with batching "
                            "tokens, else sdpa")

    @field_validator("batch_tokens", "grad_accum")
    @classmethod
    def _positive(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError("must be a positive number or 'auto'")
        return v

    @field_validator("gradient_checkpointing", mode="before")
    @classmethod
    def _bool_words(cls, v):
        # YAML reads on/off/true/false as booleans.
        if isinstance(v, bool):
            return "on" if v else "off"
        return v


class DpoSpec(_Strict):
    beta: float = Field(0.1, gt=0, description="higher keeps the model closer to the reference (0.1 is usual)")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "exo_pair", "bco_pair", "apo_zero", "apo_down"] = Field(
        "sigmoid", description="sigmoid is the DPO paper's loss")
    max_prompt_length: int = Field(512, ge=8, description="tokens kept of each prompt")
    max_completion_length: int = Field(512, ge=8, description="tokens kept of each answer")


class DistributedSpec(_Strict):
    gpus: int | Literal["all"] = Field(
        1, description="processes per machine, one per GPU: 1, N or all; more than one starts them through torchrun "
                       "(on a machine without GPUs: N CPU processes, for testing)")
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="ddp: a whole copy of the model on each GPU (it fits one) | fsdp: weights, gradients "
                            "and optimizer states sharded across the GPUs (it does not) | auto: ddp when the memory "
                            "estimate fits one GPU")

    @field_validator("gpus")
    @classmethod
    def _at_least_one(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError("must be 1 or more, or 'all'")
        return v


def task_method_problem(task: str, method: str) -> str | None:
    """Why this task cannot train with this method, or None (the wizard offers only the pairs that can)."""
    if task == "dpo" and method == "full":
        return "task dpo needs method lora or qlora: the reference model is the base with the adapter switched off"
    return None


class RunSpec(_Strict):
    version: Literal[1] = Field(SPEC_VERSION, description="spec format version")
    name: str = Field("run", description="names the run folders (<output_dir>/<name>-<time>/)")
    model: ModelSpec = Field(description="the base model")
    task: Literal["sft", "dpo"] = Field("sft", description="sft: learn from example chats | dpo: from "
                                                           "chosen/rejected pairs")
    method: Literal["qlora", "lora", "full"] = Field("qlora", description="qlora: 4-bit base + adapter | lora: "
                                                                          "16-bit + adapter | full")
    lora: LoraSpec = Field(default_factory=LoraSpec,
                           description="the LoRA adapter that is trained (methods lora and qlora)")
    quant: QuantSpec = Field(default_factory=QuantSpec, description="how the base model is loaded in 4-bit "
                                                                    "(method qlora)")
    data: DataSpec = Field(description="the training data")
    train: TrainSpec = Field(default_factory=TrainSpec, description="the training loop")
    dpo: DpoSpec = Field(default_factory=DpoSpec, description="DPO settings (task dpo)")
    distributed: DistributedSpec = Field(default_factory=DistributedSpec,
                                         description="training on several GPUs or machines (torchrun)")
    output_dir: str = Field("runs", description="run folders go here, one per run: <name>-<time>/")

    @field_validator("name")
    @classmethod
    def _name_chars(cls, v):
        # It names folders and files: no spaces or slashes, and no leading dot or dash.
        if not NAME.match(v):
            raise ValueError("letters, digits, '.', '_' and '-' only, starting with a letter or digit")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        problem = task_method_problem(self.task, self.method)
        if problem:
            raise ValueError(problem)
        t = self.train
        if t.batching == "tokens" and isinstance(t.batch_tokens, int) and t.batch_tokens < self.data.max_length:
            raise ValueError(f"train.batch_tokens ({t.batch_tokens}) is below data.max_length "
                             f"({self.data.max_length}): a full-length row would not fit in a forward pass; raise "
                             "train.batch_tokens or lower data.max_length")
        return self

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------- loading, overrides, errors

def _all_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic class that owns the field at `loc` (a validation error location)."""
    cls: Any = RunSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if field is None:
            return None
        ann = field.annotation
        nxt = None
        for cand in (ann, *getattr(ann, "__args__", ())):
            for c in (cand, *getattr(cand, "__args__", ())):
                if isinstance(c, type) and issubclass(c, BaseModel):
                    nxt = c
        if nxt is None:
            return None
        cls = nxt
    return cls


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe_errors(err: ValidationError, source: str = "spec", overrides: dict | None = None) -> list[str]:
    """One line per problem: where, what, and the fix. OVERRIDES (key path -> the --set argument that set it)
    name the --set argument, not the spec file, for the values it gave."""
    lines = []
    whole = source
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = _format_loc(loc) or "(top level)"
        path = tuple(p for p in loc if isinstance(p, str))
        given = next((arg for keys, arg in (overrides or {}).items() if path[:len(keys)] == keys), None)
        source = f"--set {given}" if given else whole
        if e["type"] == "extra_forbidden":
            owner = _model_at(loc)
            valid = _all_keys(owner) if owner else []
            section = ".".join(p for p in loc[:-1] if isinstance(p, str))
            hint = _did_you_mean(str(loc[-1]), section, valid)
            lines.append(f"{source}: {key}: unknown key; {hint}")
        elif e["type"] == "missing":
            lines.append(f"{source}: {key}: required, but missing")
        else:
            got = e.get("input")
            shown = f" (got {got!r})" if got is not None and not isinstance(got, (dict, list)) else ""
            lines.append(f"{source}: {key}: {error_message(e)}{shown}")
    return lines


def error_message(e: Any) -> str:
    """What is wrong with a value, from one pydantic error (the same words for a spec file and the wizard)."""
    return str(e["msg"]).removeprefix("Value error, ")


def _did_you_mean(name: str, section: str, valid: list[str]) -> str:
    target = ALIASES.get(name.lower())
    if target is None and name not in valid:
        # A near miss of another trainer's name (learning_rat) is that name's field, not a look-alike (warmup_ratio).
        near = difflib.get_close_matches(name.lower(), [*valid, *ALIASES], n=1, cutoff=0.5)
        target = ALIASES.get(near[0]) if near else None
    if target:
        parent, _, leaf = target.rpartition(".")
        # In the right section, the field's name; elsewhere, its whole path from the top.
        return f"did you mean '{leaf if parent == section and leaf in valid else target}'?"
    near = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"did you mean '{near[0]}'?" if near else f"valid keys here: {', '.join(valid)}"


def from_dict(raw: Any, source: str = "spec", overrides: dict | None = None) -> RunSpec:
    if not isinstance(raw, dict):
        raise SpecError([f"{source}: expected a mapping of keys (version, name, model, data, ...), "
                         f"got {type(raw).__name__}"])
    try:
        return RunSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(describe_errors(err, source, overrides)) from None


def locate(path: str | Path) -> Path:
    """A spec file, or the name of a bundled recipe (`demo`, `demo-dpo.yaml`) when no such file exists here."""
    p = Path(path)
    if p.is_file() or len(p.parts) != 1:
        return p
    from wizard.catalog import recipes_dir

    bundled = recipes_dir() / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
    return bundled if bundled.is_file() else p


def read_yaml(path: str | Path) -> dict:
    p = locate(path)
    if p.is_dir():
        inside = p / "spec.yaml"
        raise SpecError([f"{p}: a folder, not a spec file"],
                        hint=f"pass {inside}" + (" (the run's own spec)" if inside.is_file() else
                                                 ", or a YAML spec written by `tune-wizard init`"))
    if not p.is_file():
        raise SpecError([f"{p}: no such file; write one with `tune-wizard init --out {p}` "
                         f"or pick a recipe from `tune-wizard recipes`"])
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([f"{p}{where}: not valid YAML: {problem}; check the indentation and quoting there"]) from None
    except UnicodeDecodeError as exc:
        raise SpecError([f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"]) from None
    return raw if raw is not None else {}


def parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SpecError([f"--set {text}: expected KEY=VALUE, e.g. --set train.lr=1e-4"])
    # YAML typing of the value: 1e-4 -> float, true -> bool, [q_proj, v_proj] -> list.
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str) and _looks_numeric(parsed):
        parsed = float(parsed)
    return key.strip().split("."), parsed


def _looks_numeric(s: str) -> bool:
    # PyYAML reads 1e-4 (no dot) as a string; users mean a number.
    try:
        float(s)
        return s.strip().lower() not in ("nan", "inf", "-inf", "infinity")
    except ValueError:
        return False


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    errors = []
    for text in overrides:
        try:
            path, value = parse_override(text)
        except SpecError as exc:
            errors.extend(exc.problems)
            continue
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    if errors:
        raise SpecError(errors)
    return raw


def _normalise_yaml_numbers(raw: Any) -> Any:
    # PyYAML (YAML 1.1) reads `lr: 2e-4` as the string "2e-4"; accept it as the number everyone means.
    if isinstance(raw, dict):
        return {k: _normalise_yaml_numbers(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_normalise_yaml_numbers(v) for v in raw]
    if isinstance(raw, str) and _looks_numeric(raw) and any(c in raw for c in "eE") and raw[0] in "0123456789.-+":
        return float(raw)
    return raw


def load(path: str | Path, overrides: list[str] | None = None) -> RunSpec:
    path = locate(path)
    raw = _normalise_yaml_numbers(read_yaml(path))
    given = {}
    if overrides:
        if not isinstance(raw, dict):
            raw = {}
        raw = apply_overrides(raw, overrides)
        given = {tuple(parse_override(text)[0]): text for text in overrides}
    spec = from_dict(raw, source=str(path), overrides=given)
    return resolve_paths(spec, Path(path).resolve().parent)


def resolve_paths(spec: RunSpec, base: Path) -> RunSpec:
    """Relative dataset paths are tried against the spec's folder, then the working directory."""
    for src in [*spec.data.train, *spec.data.eval]:
        p = Path(src.path)
        if not p.is_absolute() and not p.exists() and (base / p).exists():
            src.path = str((base / p).resolve())
    return spec


def dump(spec: RunSpec, path: str | Path, header: str = "") -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(spec.to_dict(), sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
    write_text_atomic(p, header + text)
    return p
