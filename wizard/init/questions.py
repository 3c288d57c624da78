"""The wizard's questions, as data.

Each question says what it asks, a one-line help, its default as a function of (answers so far, context),
its choices, its validator, when it applies, and which spec key its answer lands in. The interactive flow,
`--defaults` and `--answers FILE` all walk this one list, so Enter at every prompt and `--defaults` can't
drift apart. Answers become a RunSpec dict in `build_spec_dict`; nothing else writes spec keys.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.catalog import lookup
from wizard.init.context import HUB_ID, Context

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HUB_DATASET = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(#[1-9][0-9]*)?$")
HUB_TITLES = {"huggingface": "Hugging Face", "modelscope": "ModelScope"}
STEPS = {2: "Where the model comes from", 3: "The model", 4: "The task", 5: "The dataset",
         6: "Hyperparameters", 7: "Output", 8: "Summary", 9: "Start"}


@dataclass(frozen=True)
class Option:
    value: str
    title: str
    help: str = ""
    group: str = ""  # a select shows a header line whenever the group changes


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # select | text | confirm | path | number
    step: int
    prompt: str
    help: str
    default: Callable[[dict, Context], Any]
    key: str | None = None  # the spec key the answer maps to ("a, b" when it sets several)
    choices: Callable[[dict, Context], list] | None = None
    validate: Callable[[Any, dict, Context], str | None] | None = None  # an error message, or None
    when: Callable[[dict, Context], bool] = lambda a, c: True
    tuning: bool = False    # asked only when the recommended settings are declined
    advanced: bool = False  # ... and only in the advanced branch
    integer: bool = False   # number questions: int rather than float
    # A select answer that is not one of the choices (an answers file saying `model: Qwen/Qwen2-7B`):
    # returns the answers it stands for, or None to reject it.
    other: Callable[[Any, Context], dict | None] | None = None
    back_to: str | None = None  # a confirm answered No goes back to that question
    optional: bool = False  # text/path: an empty answer is allowed (and means "none")


# ---------------------------------------------------------------- helpers used by defaults and validators

def model_id(a: dict, ctx: Context) -> str:
    hub = a.get("hub")
    if hub == "demo":
        return ctx.demo_alias()
    if hub == "local":
        return str(a.get("model_path", ""))
    return a.get("model_id", "") if a.get("model") == "other" else a.get("model", "")


def task_method(a: dict) -> tuple[str, str]:
    task, _, method = str(a.get("task", "sft-qlora")).partition("-")
    return task, method


def rec(a: dict, ctx: Context) -> dict:
    """The recommended hyperparameters for the model and method chosen so far."""
    task, method = task_method(a)
    return {**STATIC_DEFAULTS, **ctx.settings_for(model_id(a, ctx), task, method, a.get("dataset", ""))}


def uses_adapter(a: dict, ctx: Context) -> bool:
    return task_method(a)[1] != "full"


def short_name(mid: str) -> str:
    entry = lookup(mid)
    base = entry.alias if entry else Path(mid.rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._").lower() or "model"


def _number(lo: float = None, hi: float = None, lo_open: bool = False, hi_open: bool = False):
    def check(v, a, ctx):
        if lo is not None and (v < lo or (lo_open and v == lo)):
            return f"must be {'above' if lo_open else 'at least'} {lo}"
        if hi is not None and (v > hi or (hi_open and v == hi)):
            return f"must be {'below' if hi_open else 'at most'} {hi}"
        return None
    return check


def _hub_model_options(a: dict, ctx: Context) -> list:
    out = []
    for m in sorted(ctx.hub_models(a.get("hub", "huggingface")), key=lambda m: (m.family.lower(), m.params_b)):
        size = f"{m.params_b:g}B"
        out.append(Option(m.alias, f"{m.alias:<30} {size:>6}  {ctx.fit_marks(m.alias)}", group=m.family))
    out.append(Option("other", "Type a model id (owner/name) …", group="Other"))
    return out


def _model_other(value: Any, ctx: Context) -> dict | None:
    entry = lookup(str(value))
    if entry:
        return {"model": entry.alias}
    return {"model": "other", "model_id": str(value)} if HUB_ID.match(str(value)) else None


def _check_model_id(v: str, a: dict, ctx: Context) -> str | None:
    if not HUB_ID.match(v):
        return "an id looks like owner/name, e.g. Qwen/Qwen2.5-7B-Instruct"
    if ctx.hub_has_model(a.get("hub", ""), v) is False:
        return f"{HUB_TITLES.get(a.get('hub'), a.get('hub'))} has no model '{v}'; check the spelling"
    return None


def _check_model_path(v: str, a: dict, ctx: Context) -> str | None:
    p = Path(v).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return None
    if not p.is_dir():
        return f"no folder {p}"
    if not (p / "config.json").is_file() and not list(p.glob("*.gguf")):
        return f"{p} holds no config.json: point at the folder with the model's config and weights"
    return None


def _check_adapter(v: str, a: dict, ctx: Context) -> str | None:
    if not v:
        return None
    p = Path(v).expanduser()
    if not p.is_dir():
        return f"no folder {p}"
    if not any((p / sub / "adapter_config.json").is_file() for sub in ("", "adapter")):
        return f"{p} holds no adapter (adapter_config.json, or adapter/ of a finished run)"
    return None


TASKS = [
    ("sft-qlora", "SFT with QLoRA (4-bit)", "example chats; 4-bit base: the least memory"),
    ("sft-lora", "SFT with LoRA", "example chats; 16-bit base: faster, ~2x the memory"),
    ("sft-full", "Full SFT", "every weight trained: the most memory, small models"),
    ("dpo-lora", "DPO with LoRA", "chosen/rejected pairs; best after an SFT run"),
    ("dpo-qlora", "DPO with QLoRA", "chosen/rejected pairs; 4-bit base"),
]


def _task_options(a: dict, ctx: Context) -> list:
    mid = model_id(a, ctx)
    best = _default_task(a, ctx)
    out = []
    for value, title, help_ in TASKS:
        mark = "  ★ recommended" if value == best else ""
        if ctx.fits(mid, value.partition("-")[2]) is False:
            mark += "  ✗ may not fit"
        out.append(Option(value, f"{title:<24}{help_}{mark}", help=help_))
    return out


def _default_task(a: dict, ctx: Context) -> str:
    return "sft-" + ctx.recommend(model_id(a, ctx), "sft")["method"]


def _dataset_options(a: dict, ctx: Context) -> list:
    data = ctx.bundled_data()
    dpo = task_method(a)[0] == "dpo"
    out = []
    pref = [k for k in data if "pref" in k or "dpo" in k]
    if dpo:
        out += [Option(f"bundled:{k}", f"Bundled: {k}", "preference pairs shipped with tune-wizard") for k in pref]
    else:
        if "self_cognition" in data and "general_chat" in data:
            out.append(Option("bundled:mix", "Bundled: self_cognition + general_chat (the demo: a new identity "
                              "that still chats)"))
        out += [Option(f"bundled:{k}", f"Bundled: {k}") for k in data if k not in pref]
    out.append(Option("local", "A local file (.jsonl, .json, .csv, .parquet)"))
    out.append(Option("hub", "A hub dataset id, with #N to sample N rows"))
    return out


def _dataset_other(value: Any, ctx: Context) -> dict | None:
    v = str(value)
    if Path(v).expanduser().is_file():
        return {"dataset": "local", "dataset_path": v}
    return {"dataset": "hub", "dataset_hub": v} if HUB_DATASET.match(v) else None


def _check_dataset_path(v: str, a: dict, ctx: Context) -> str | None:
    p = Path(v).expanduser()
    if not p.is_file():
        return f"no file {p}"
    try:
        ctx.preview(str(p), task_method(a)[0])
    except ImportError:
        return None  # the loader is missing: `tune-wizard validate` will check it
    except Exception as exc:  # noqa: BLE001 - DataError says what is wrong and where; others, in one line
        problems = getattr(exc, "problems", None) or [f"{type(exc).__name__}: {exc}"]
        return "; ".join(problems)[:300]
    return None


def check_targets(v: Any, a: dict, ctx: Context) -> str | None:
    items = v if isinstance(v, list) else [v]
    if not items or not all(isinstance(t, str) and re.match(r"^[\w.-]+$", t) for t in items):
        return "auto, all-linear, or module names separated by commas (q_proj,v_proj)"
    return None


def _grad_accum_default(a: dict, ctx: Context) -> int:
    r = rec(a, ctx)
    batch = int(a.get("batch_size") or r["batch_size"])
    # A changed batch size keeps the total batch near 16; otherwise the recommendation stands.
    return int(r["grad_accum"]) if batch == int(r["batch_size"]) else max(1, round(16 / batch))


def _name_default(a: dict, ctx: Context) -> str:
    task, method = task_method(a)
    return f"{short_name(model_id(a, ctx))}-{task}-{method}"


def _check_name(v: str, a: dict, ctx: Context) -> str | None:
    return None if NAME.match(v) else "letters, digits, '.', '_' and '-' only, starting with a letter or digit"


def _rec_flag(name: str):
    return lambda a, c: rec(a, c)[name]


Q = Question
QUESTIONS: list[Question] = [
    Q("hub", "select", 2, "Where should the model come from?",
      "ModelScope and Hugging Face download on first use; a local folder or the bundled demo need no network.",
      lambda a, c: ("huggingface" if c.hubs.get("huggingface") else "modelscope")
      if c.gpus and any(c.hubs.values()) else "demo", key="model.hub",
      choices=lambda a, c: [
          Option("modelscope", "ModelScope" + ("" if c.hubs.get("modelscope") else "  (not answering now)")),
          Option("huggingface", "Hugging Face (or a mirror)"
                 + ("" if c.hubs.get("huggingface") else "  (not answering now)")),
          Option("local", "A local folder"),
          Option("demo", f"The bundled demo model ({c.demo_alias()}, no download)")]),
    Q("hf_endpoint", "text", 2, "Hugging Face mirror endpoint (empty: huggingface.co)",
      "Sets HF_ENDPOINT for downloads, e.g. https://hf-mirror.com; the summary prints the export line to reuse.",
      lambda a, c: __import__("os").environ.get("HF_ENDPOINT", ""),
      validate=lambda v, a, c: None if not v or re.match(r"^https?://\S+$", v)
      else "a URL such as https://hf-mirror.com",
      when=lambda a, c: a.get("hub") == "huggingface", optional=True),
    Q("model", "select", 3, "Which model?",
      "Marks: whether each method fits this machine at 2048 tokens, from the memory estimate (? = unknown).",
      lambda a, c: c.default_model(a["hub"]), key="model.id", choices=_hub_model_options, other=_model_other,
      when=lambda a, c: a.get("hub") in ("huggingface", "modelscope")),
    Q("model_id", "text", 3, "Model id (owner/name)",
      "As on the hub's model page, e.g. Qwen/Qwen2.5-7B-Instruct.", lambda a, c: "", key="model.id",
      validate=_check_model_id, when=lambda a, c: a.get("model") == "other"),
    Q("model_path", "path", 3, "Model folder",
      "A folder holding config.json and the weights (safetensors or .bin), or a .gguf file.",
      lambda a, c: "", key="model.id", validate=_check_model_path, when=lambda a, c: a.get("hub") == "local"),
    Q("task", "select", 4, "What kind of training?",
      "SFT teaches from example conversations; DPO from preferred vs rejected answers.",
      _default_task, key="task, method", choices=_task_options),
    Q("dpo_adapter", "path", 4, "Start from an SFT run folder (empty: from the base model)",
      "DPO works best on a model already tuned with SFT on similar data: give that run's folder.",
      lambda a, c: "", key="model.adapter", validate=_check_adapter,
      when=lambda a, c: task_method(a)[0] == "dpo", optional=True),
    Q("dataset", "select", 5, "Which dataset?",
      "Rows in messages, sharegpt, alpaca or query/response format (DPO: chosen/rejected pairs).",
      lambda a, c: next((o.value for o in _dataset_options(a, c)), "local"), key="data.train",
      choices=_dataset_options, other=_dataset_other),
    Q("dataset_path", "path", 5, "Dataset file",
      "Tab completes paths. The file is read now: its format, row count and first row are shown.",
      lambda a, c: "", key="data.train", validate=_check_dataset_path, when=lambda a, c: a.get("dataset") == "local"),
    Q("dataset_confirm", "confirm", 5, "Use this dataset?", "No asks for another file.",
      lambda a, c: True, when=lambda a, c: a.get("dataset") == "local", back_to="dataset_path"),
    Q("dataset_hub", "text", 5, "Dataset id (owner/name, #N samples N rows)",
      "e.g. AI-ModelScope/alpaca-gpt4-data-en#500; downloaded when the run starts.", lambda a, c: "",
      key="data.train", validate=lambda v, a, c: None if HUB_DATASET.match(v) else "owner/name or owner/name#N",
      when=lambda a, c: a.get("dataset") == "hub"),
    Q("use_recommended", "confirm", 6, "Use the recommended settings?",
      "Yes takes the values above; No asks for each of them.", lambda a, c: True),
    Q("lora_r", "number", 6, "LoRA rank",
      "Size of the adapter: 8 is the usual start; 16-64 learn more, use more memory.",
      _rec_flag("lora_r"), key="lora.r", validate=_number(1, 1024), when=uses_adapter, tuning=True, integer=True),
    Q("lora_alpha", "number", 6, "LoRA alpha", "Scales the adapter's update (alpha / rank); 32 with rank 8 is common.",
      _rec_flag("lora_alpha"), key="lora.alpha", validate=_number(0, lo_open=True), when=uses_adapter, tuning=True),
    Q("lr", "number", 6, "Learning rate", "2e-4 suits LoRA/QLoRA; full training wants about 10x less.",
      _rec_flag("lr"), key="train.lr", validate=_number(0, 1, True, True), tuning=True),
    Q("epochs", "number", 6, "Epochs", "Passes over the dataset; 3 is usual, fewer for large datasets.",
      _rec_flag("epochs"), key="train.epochs", validate=_number(0, lo_open=True), tuning=True),
    Q("max_length", "number", 6, "Max length (tokens)", "Longer rows are cut; memory grows with it.",
      _rec_flag("max_length"), key="data.max_length", validate=_number(16), tuning=True, integer=True),
    Q("batch_size", "number", 6, "Batch size per step", "Rows per forward pass; raise it only if memory allows.",
      _rec_flag("batch_size"), key="train.batch_size", validate=_number(1), tuning=True, integer=True),
    Q("grad_accum", "number", 6, "Gradient accumulation", "Steps summed per update: batch x this = total batch (~16).",
      lambda a, c: _grad_accum_default(a, c),
      key="train.grad_accum", validate=_number(1), tuning=True, integer=True),
    Q("advanced", "confirm", 6, "Change advanced settings?",
      "Dropout, target modules, warmup, weight decay, scheduler, optimizer, saving, packing, eval split, seed.",
      lambda a, c: False, tuning=True),
    Q("lora_dropout", "number", 6, "LoRA dropout", "Regularises the adapter; 0.05 is usual, 0 for tiny datasets.",
      _rec_flag("lora_dropout"), key="lora.dropout", validate=_number(0, 1, hi_open=True), when=uses_adapter,
      tuning=True, advanced=True),
    Q("target_modules", "text", 6, "LoRA target modules", "auto (the family's attention projections), all-linear, "
      "or names separated by commas.", _rec_flag("target_modules"), key="lora.target_modules",
      validate=check_targets, when=uses_adapter, tuning=True, advanced=True),
    Q("max_steps", "number", 6, "Stop after N steps (-1: run all epochs)", "Caps the run's length in optimizer "
      "steps, whatever the epochs say.", _rec_flag("max_steps"), key="train.max_steps", validate=_number(-1),
      tuning=True, advanced=True, integer=True),
    Q("warmup_ratio", "number", 6, "Warmup ratio", "Share of steps spent ramping the learning rate up.",
      _rec_flag("warmup_ratio"), key="train.warmup_ratio", validate=_number(0, 1, hi_open=True), tuning=True,
      advanced=True),
    Q("weight_decay", "number", 6, "Weight decay", "Pulls weights toward zero; 0 is usual for LoRA.",
      _rec_flag("weight_decay"), key="train.weight_decay", validate=_number(0), tuning=True, advanced=True),
    Q("scheduler", "select", 6, "Learning-rate schedule", "How the learning rate changes after warmup.",
      _rec_flag("scheduler"), key="train.scheduler", tuning=True, advanced=True,
      choices=lambda a, c: [Option(s, s) for s in ("cosine", "linear", "constant", "constant_with_warmup",
                                                   "cosine_with_restarts", "polynomial")]),
    Q("optimizer", "select", 6, "Optimizer", "adamw_torch is the default; the 8-bit ones save optimizer memory.",
      _rec_flag("optimizer"), key="train.optimizer", tuning=True, advanced=True,
      choices=lambda a, c: [Option(s, s) for s in ("adamw_torch", "adamw_torch_fused", "paged_adamw_8bit",
                                                   "adamw_8bit", "paged_adamw_32bit", "sgd", "adafactor")]),
    Q("save_steps", "number", 6, "Save a checkpoint every N steps", "Checkpoints let `run --resume` continue.",
      _rec_flag("save_steps"), key="train.save_steps", validate=_number(1), tuning=True, advanced=True, integer=True),
    Q("logging_steps", "number", 6, "Log every N steps",
      "Loss, learning rate, memory and speed, in the log and dashboard.", _rec_flag("logging_steps"),
      key="train.logging_steps", validate=_number(1), tuning=True, advanced=True, integer=True),
    Q("gradient_checkpointing", "select", 6, "Gradient checkpointing",
      "Recomputes activations in the backward pass: much less memory, about 30% slower.",
      _rec_flag("gradient_checkpointing"), key="train.gradient_checkpointing", tuning=True, advanced=True,
      choices=lambda a, c: [Option("on", "on"), Option("off", "off"), Option("auto", "auto (decided at start)")]),
    Q("packing", "confirm", 6, "Pack short rows together?",
      "Fills each sequence with several rows: faster on short data.",
      _rec_flag("packing"), key="data.packing", tuning=True, advanced=True),
    Q("eval_split", "number", 6, "Eval split", "Share of rows held out to report eval loss (0: none).",
      _rec_flag("eval_split"), key="data.eval_split", validate=_number(0, 1, hi_open=True), tuning=True, advanced=True),
    Q("seed", "number", 6, "Random seed", "Same seed, same data order and initialisation.",
      _rec_flag("seed"), key="train.seed", tuning=True, advanced=True, integer=True),
    Q("dpo_beta", "number", 6, "DPO beta", "How far the tuned model may drift from the reference: higher "
      "stays closer (0.1 is usual).", _rec_flag("dpo_beta"), key="dpo.beta", validate=_number(0, lo_open=True),
      when=lambda a, c: task_method(a)[0] == "dpo", tuning=True, advanced=True),
    Q("output_dir", "path", 7, "Folder for the runs", "Each run gets its own folder inside: <name>-<time>/.",
      lambda a, c: "runs", key="output_dir",
      validate=lambda v, a, c: None if v.strip() and not Path(v).expanduser().is_file() else "a folder path"),
    Q("name", "text", 7, "Run name", "Names the run folders and the spec file.", _name_default, key="name",
      validate=_check_name),
    Q("overwrite", "confirm", 8, "That file exists. Overwrite it?", "No asks for another file name.",
      lambda a, c: False, when=lambda a, c: False),  # asked by the flow when the spec file exists
    Q("out_file", "path", 8, "Write the spec to", "A new file; nothing existing is overwritten.",
      lambda a, c: "", when=lambda a, c: False),
    Q("start", "confirm", 9, "Start training now?", "Same as running the command shown above.",
      lambda a, c: True, when=lambda a, c: not c.no_start),
]
BY_ID = {q.id: q for q in QUESTIONS}

# Hyperparameter defaults that the estimate does not set (the recipe values users know from ms-swift).
STATIC_DEFAULTS = {"dpo_beta": 0.1, "max_steps": -1, "lora_r": 8, "lora_alpha": 32, "epochs": 3,
                   "lora_dropout": 0.05, "target_modules": "auto", "warmup_ratio": 0.03, "weight_decay": 0.0,
                   "scheduler": "cosine", "optimizer": "adamw_torch", "save_steps": 100, "logging_steps": 5,
                   "packing": False, "eval_split": 0.0, "seed": 42}


def options(q: Question, a: dict, ctx: Context) -> list:
    return q.choices(a, ctx) if q.choices else []


def default(q: Question, a: dict, ctx: Context) -> Any:
    v = q.default(a, ctx)
    if q.id == "gradient_checkpointing" and isinstance(v, bool):
        v = "on" if v else "off"
    if q.id == "target_modules" and isinstance(v, (list, tuple)):
        v = ",".join(v)
    return v
