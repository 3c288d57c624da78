"""The run spec: the one validated description of a fine-tuning run.

The wizard, `--set` overrides and hand-written YAML all end here; the engine reads nothing else.
Field names are a public contract (recipes, saved run folders and tests depend on them): add fields,
never rename them.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wizard.errors import SpecError

SPEC_VERSION = 1


class _Strict(BaseModel):
    # Unknown keys are errors: a typo such as `learning_rate:` must not silently train with defaults.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSpec(_Strict):
    id: str = Field(description="catalog alias, Hugging Face id, ModelScope id, local folder or .gguf file")
    hub: Literal["auto", "huggingface", "modelscope", "local"] = "auto"
    revision: str | None = None
    # A finished SFT run (or adapter folder) to start from; DPO uses it, SFT continues training it.
    adapter: str | None = None
    trust_remote_code: bool = False


class LoraSpec(_Strict):
    r: int = Field(8, ge=1, le=1024)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    # "auto" takes the catalog's per-family default (q_proj/v_proj for Llama and Qwen, ...).
    target_modules: Literal["auto", "all-linear"] | list[str] = "auto"

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("must name at least one module, or be 'all-linear' or 'auto'")
        return v


class QuantSpec(_Strict):
    bits: Literal[4, 8] = 4
    type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"


FORMATS = ("auto", "alpaca", "sharegpt", "messages", "query_response", "prompt_completion", "preference")


class DatasetSource(_Strict):
    """One dataset: a local file, or a hub id with an optional `#N` row sample."""

    path: str
    format: Literal[FORMATS] = "auto"  # type: ignore[valid-type]
    hub: Literal["auto", "huggingface", "modelscope", "local"] = "auto"
    split: str = "train"
    subset: str | None = None
    # Rename source columns to the ones a format expects, e.g. {question: instruction, answer: output}.
    columns: dict[str, str] = Field(default_factory=dict)
    sample: int | None = Field(None, ge=1)


class DataSpec(_Strict):
    train: list[DatasetSource]
    eval: list[DatasetSource] = Field(default_factory=list)
    format: Literal[FORMATS] = "auto"  # type: ignore[valid-type]
    max_length: int = Field(2048, ge=16)
    # What happens to a row longer than max_length: cut it (the answer may lose its end) or drop it.
    overflow: Literal["truncate", "drop"] = "truncate"
    eval_split: float = Field(0.0, ge=0, lt=1)
    packing: bool = False
    system: str | None = None
    # Train on the assistant turns only (the usual choice); False trains on the whole text.
    assistant_only_loss: bool = True
    max_errors: int = Field(20, ge=1)

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
    epochs: float = Field(3, gt=0)
    max_steps: int = Field(-1, ge=-1)
    batch_size: int = Field(1, ge=1)
    grad_accum: int = Field(16, ge=1)
    lr: float = Field(2e-4, gt=0, lt=1)
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    optimizer: Literal["adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit", "sgd", "adafactor"] = "adamw_torch"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    seed: int = 42
    logging_steps: int = Field(5, ge=1)
    save_steps: int = Field(100, ge=1)
    save_total_limit: int | None = Field(3, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"

    @field_validator("gradient_checkpointing", mode="before")
    @classmethod
    def _bool_words(cls, v):
        # YAML reads on/off/true/false as booleans.
        if isinstance(v, bool):
            return "on" if v else "off"
        return v


class DpoSpec(_Strict):
    beta: float = Field(0.1, gt=0)
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "exo_pair", "bco_pair", "apo_zero", "apo_down"] = "sigmoid"
    max_prompt_length: int = Field(512, ge=8)
    max_completion_length: int = Field(512, ge=8)


class RunSpec(_Strict):
    version: Literal[1] = SPEC_VERSION
    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: ModelSpec
    task: Literal["sft", "dpo"] = "sft"
    method: Literal["qlora", "lora", "full"] = "qlora"
    lora: LoraSpec = Field(default_factory=LoraSpec)
    quant: QuantSpec = Field(default_factory=QuantSpec)
    data: DataSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    dpo: DpoSpec = Field(default_factory=DpoSpec)
    output_dir: str = "runs"

    @model_validator(mode="after")
    def _consistent(self):
        if self.task == "dpo" and self.method == "full":
            raise ValueError("task dpo needs method lora or qlora: the reference model is the base with "
                             "the adapter switched off")
        return self

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------- loading, overrides, errors

# Names users bring from other tools (HF TrainingArguments, ms-swift, LLaMA-Factory, axolotl).
KNOWN_ALIASES = {
    "learning_rate": "lr", "num_train_epochs": "epochs", "num_epochs": "epochs",
    "per_device_train_batch_size": "batch_size", "micro_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "lr_scheduler_type": "scheduler", "optim": "optimizer",
    "lora_rank": "r", "rank": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
    "lora_target": "target_modules", "lora_target_modules": "target_modules",
    "max_seq_length": "max_length", "cutoff_len": "max_length", "sequence_len": "max_length",
    "model_name_or_path": "id", "base_model": "id", "dataset": "train", "datasets": "train",
    "train_type": "method", "tuner_type": "method", "finetuning_type": "method", "stage": "task",
}


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


def describe_errors(err: ValidationError, source: str = "spec") -> list[str]:
    """One line per problem: where, what, and the fix."""
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = _format_loc(loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            owner = _model_at(loc)
            valid = _all_keys(owner) if owner else []
            alias = KNOWN_ALIASES.get(str(loc[-1]))
            near = [alias] if alias in valid else difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"did you mean '{near[0]}'?" if near else f"valid keys here: {', '.join(valid)}"
            lines.append(f"{source}: {key}: unknown key; {hint}")
        elif e["type"] == "missing":
            lines.append(f"{source}: {key}: required, but missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            shown = f" (got {got!r})" if got is not None and not isinstance(got, (dict, list)) else ""
            lines.append(f"{source}: {key}: {msg}{shown}")
    return lines


def from_dict(raw: Any, source: str = "spec") -> RunSpec:
    if not isinstance(raw, dict):
        raise SpecError([f"{source}: expected a mapping of keys (version, name, model, data, ...), "
                         f"got {type(raw).__name__}"])
    try:
        return RunSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(describe_errors(err, source)) from None


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
    if overrides:
        if not isinstance(raw, dict):
            raw = {}
        raw = apply_overrides(raw, overrides)
    spec = from_dict(raw, source=str(path))
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
    p.write_text(header + text, encoding="utf-8")
    return p
