"""The wizard's questions, as data.

Each question says what it asks, when it applies and which RunSpec field its answer sets (`spec`, a dotted
path such as "train.lr"). The field supplies the rest: the help line (its description), the static default,
the choices (its Literal) and the bounds (its ge/gt/le/lt, checked by the spec's own validator, so a bad
answer gets the words a bad spec file gets). A question overrides one of these only on purpose, and says
why where it does. Recommended values come from the estimator (wizard.estimate.recommend, through
Context.settings_for) and replace the static default of the hyperparameter questions.

The interactive flow, `--defaults` and `--answers FILE` all walk this one list, so Enter at every prompt and
`--defaults` can't drift apart. Answers become a RunSpec dict in wizard.init.answers.build_spec_dict.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard import hubs
from wizard.catalog import lookup
from wizard.estimate.batching import ROWS_PER_UPDATE
from wizard.init.context import Context
from wizard.spec import fields, task_method_problem

HUB_DATASET = re.compile(rf"^{hubs.REPO_ID_PATTERN}(#[1-9][0-9]*)?$")
HUB_TITLES = hubs.TITLES
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
    spec: str | None = None  # the RunSpec field the answer sets; its facts fill what is not overridden
    also: tuple[str, ...] = ()  # further fields the same answer sets ("sft-lora" sets task and method)
    help: str | None = None  # overrides the field's description (a question without a field needs one)
    default: Callable[[dict, Context], Any] | None = None  # overrides the field's (or the recommended) default
    choices: Callable[[dict, Context], list] | None = None  # overrides the field's Literal choices
    validate: Callable[[Any, dict, Context], str | None] | None = None  # a check beyond the field's own
    to_spec: Callable[[Any], Any] | None = None  # the answer as the field's value, where the two differ
    when: Callable[[dict, Context], bool] = lambda a, c: True
    tuning: bool = False    # asked only when the recommended settings are declined
    advanced: bool = False  # ... and only in the advanced branch
    # A select answer that is not one of the choices (an answers file saying `model: Qwen/Qwen2-7B`):
    # returns the answers it stands for, or None to reject it.
    other: Callable[[Any, Context], dict | None] | None = None
    back_to: str | None = None  # a confirm answered No goes back to that question
    optional: bool = False  # text/path: an empty answer is allowed (and means "none")
    # An answers file may leave it out and get the default, even without --defaults: a question that only offers
    # an extra step (download now?) must not break answers files written before it existed.
    may_skip: bool = False

    @property
    def integer(self) -> bool:
        """A number question for an int field (lora.r) reads whole numbers; a float field (train.lr) any."""
        return self.kind == "number" and self.spec is not None and fields.is_integer(self.spec)


# ---------------------------------------------------------------- helpers used by defaults and validators

def model_id(a: dict, ctx: Context) -> str:
    hub = a.get("hub")
    if hub == "demo":
        return ctx.demo_alias()
    if hub == "local":
        return str(a.get("model_path", ""))
    return a.get("model_id", "") if a.get("model") == "other" else a.get("model", "")


def task_method(a: dict) -> tuple[str, str]:
    task, _, method = str(a.get("task") or TASK_PAIRS[0]).partition("-")
    return task, method


def rec(a: dict, ctx: Context) -> dict:
    """The recommended spec values (by dotted path) for the model and method chosen so far, and "reason"."""
    task, method = task_method(a)
    return ctx.settings_for(model_id(a, ctx), task, method, a.get("dataset", ""))


def uses_adapter(a: dict, ctx: Context) -> bool:
    return task_method(a)[1] != "full"


def short_name(mid: str) -> str:
    entry = lookup(mid)
    base = entry.alias if entry else Path(mid.rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._").lower() or "model"


def _hub_options(a: dict, ctx: Context) -> list:
    return [Option("modelscope", "ModelScope" + ("" if ctx.hubs.get("modelscope") else "  (not answering now)")),
            Option("huggingface", "Hugging Face (or a mirror)"
                   + ("" if ctx.hubs.get("huggingface") else "  (not answering now)")),
            Option("local", "A local folder"),
            Option("demo", f"The bundled demo model ({ctx.demo_alias()}, no download)")]


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
    return {"model": "other", "model_id": str(value)} if hubs.is_repo_id(str(value)) else None


def _check_model_id(v: str, a: dict, ctx: Context) -> str | None:
    if not hubs.is_repo_id(v):
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


def _check_download_to(v: str, a: dict, ctx: Context) -> str | None:
    return hubs.target_problem(v)


def _check_adapter(v: str, a: dict, ctx: Context) -> str | None:
    p = Path(v).expanduser()
    if not p.is_dir():
        return f"no folder {p}"
    if not any((p / sub / "adapter_config.json").is_file() for sub in ("", "adapter")):
        return f"{p} holds no adapter (adapter_config.json, or adapter/ of a finished run)"
    return None


# The task question picks task and method in one answer: every pair the spec allows, in the spec's order.
TASK_PAIRS = [f"{t}-{m}" for t in fields.choices("task") for m in fields.choices("method")
              if task_method_problem(t, m) is None]
# How each pair reads in the list (presentation only; a unit test keeps its keys equal to TASK_PAIRS).
TASK_TITLES = {
    "sft-qlora": ("SFT with QLoRA (4-bit)", "example chats; 4-bit base: the least memory"),
    "sft-lora": ("SFT with LoRA", "example chats; 16-bit base: faster, ~2x the memory"),
    "sft-full": ("Full SFT", "every weight trained: the most memory, small models"),
    "dpo-qlora": ("DPO with QLoRA", "chosen/rejected pairs; 4-bit base"),
    "dpo-lora": ("DPO with LoRA", "chosen/rejected pairs; best after an SFT run"),
}


def _task_options(a: dict, ctx: Context) -> list:
    mid = model_id(a, ctx)
    best = _default_task(a, ctx)
    out = []
    for value in TASK_PAIRS:
        title, help_ = TASK_TITLES.get(value, (value, ""))
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


def _check_dataset_hub(v: str, a: dict, ctx: Context) -> str | None:
    if not HUB_DATASET.match(v):
        return "owner/name or owner/name#N"
    hub = a.get("hub", "")
    if hub in HUB_TITLES and ctx.hub_has_model(hub, v.partition("#")[0], kind="dataset") is False:
        return f"{HUB_TITLES[hub]} has no dataset '{v.partition('#')[0]}'; check the spelling (and the hub)"
    return None


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


def targets(v: Any) -> Any:
    """The target-modules answer as the field's value: auto, all-linear, or a list of names."""
    if isinstance(v, list):
        return v
    s = str(v).strip()
    return s if s in fields.choices("lora.target_modules") else [t.strip() for t in s.split(",") if t.strip()]


def check_targets(v: Any, a: dict, ctx: Context) -> str | None:
    items = targets(v)
    items = items if isinstance(items, list) else [items]
    if not items or not all(isinstance(t, str) and re.match(r"^[\w.-]+$", t) for t in items):
        return "auto, all-linear, or module names separated by commas (q_proj,v_proj)"
    return None


def batches_tokens(a: dict, ctx: Context) -> bool:
    """Whether the run will batch by tokens: SFT with batching tokens (answered, else recommended)."""
    if task_method(a)[0] != "sft":
        return False
    return (a.get("batching") or rec(a, ctx).get("train.batching", fields.default("train.batching"))) == "tokens"


def auto_or_whole(v: Any) -> Any:
    """`auto` or a whole number, as a field that takes either holds it; anything else is left for the check."""
    s = str(v).strip().lower()
    return "auto" if s == "auto" else int(s) if s.isdigit() else s


def _check_auto_or_whole(v: Any, a: dict, ctx: Context) -> str | None:
    return None if isinstance(auto_or_whole(v), int) or auto_or_whole(v) == "auto" else "auto or a whole number"


def _check_batch_tokens(v: Any, a: dict, ctx: Context) -> str | None:
    err = _check_auto_or_whole(v, a, ctx)
    tokens = auto_or_whole(v)
    length = int(a.get("max_length") or rec(a, ctx).get("data.max_length", fields.default("data.max_length")))
    if err is None and isinstance(tokens, int) and tokens < length:
        return f"at least the max length ({length}): a full row must fit in a forward pass"
    return err


def _grad_accum_default(a: dict, ctx: Context) -> Any:
    r = rec(a, ctx)
    if batches_tokens(a, ctx):  # the recommendation, else auto: the run fits the update to the budget it picks
        return r.get("train.grad_accum", "auto") if r.get("train.batching") == "tokens" else "auto"
    rec_batch = int(r.get("train.batch_size", fields.default("train.batch_size")))
    rec_accum = r.get("train.grad_accum", fields.default("train.grad_accum"))
    batch = int(a.get("batch_size") or rec_batch)
    if rec_accum == "auto":  # rows chosen where tokens were recommended: the usual total batch, as a number
        return max(1, round(ROWS_PER_UPDATE / batch))
    # A changed batch size keeps the recommended total batch; otherwise the recommendation stands.
    return int(rec_accum) if batch == rec_batch else max(1, round(rec_batch * int(rec_accum) / batch))


def dataset_rows(a: dict, ctx: Context) -> tuple[int | None, float | None]:
    """(rows, tokens per row) of the chosen dataset where they can be read now: a local or bundled file
    (tokens at ~4 characters each: the tokenizer is not loaded), a hub id's #N sample (rows only)."""
    choice = a.get("dataset", "")
    if choice == "hub":
        n = str(a.get("dataset_hub", "")).partition("#")[2]
        return (int(n) if n.isdigit() else None), None
    data = ctx.bundled_data()
    if choice == "local" and a.get("dataset_path"):
        files = [Path(a["dataset_path"]).expanduser()]
    elif choice == "bundled:mix":
        files = [data.get("self_cognition"), data.get("general_chat")]
    elif choice.startswith("bundled:"):
        files = [data.get(choice.partition(":")[2])]
    else:
        return None, None
    rows, chars = 0, 0.0
    try:
        for f in files:
            p = ctx.preview(str(f), task_method(a)[0])
            rows += p.rows
            chars += (p.mean_chars or 0) * p.rows
    except Exception:  # noqa: BLE001 - no preview: the figures that need it are left out
        return None, None
    return rows, (chars / rows / 4 + 20 if rows and chars else None)  # + the chat template's own tokens


def _gpu_options(a: dict, ctx: Context) -> list:
    """All the GPUs, each smaller count, one: the first says DDP or FSDP and why, by the rule the run applies
    (wizard.estimate.strategy)."""
    n = len(ctx.gpus)
    why = _strategy(a, ctx, n)
    out = [Option(str(n), f"all {n} GPUs", why)]
    out += [Option(str(k), f"{k} GPUs", f"{k} of the {n}") for k in range(n - 1, 1, -1)]
    return [*out, Option("1", "1 GPU", "one process, no torchrun; the other GPUs stay free")]


def _strategy(a: dict, ctx: Context, n: int) -> str:
    from wizard.estimate.strategy import choose
    from wizard.spec import from_dict

    task, method = task_method(a)
    try:
        spec = from_dict({"model": {"id": model_id(a, ctx) or "model"}, "task": task, "method": method,
                          "data": {"train": ["data.jsonl"]}})
        strategy, why = choose(spec, ctx.hardware, ctx.shape(spec.model.id), n)
    except Exception:  # noqa: BLE001 - the model's size unknown here: the run decides when it starts
        return "the run picks DDP when the model fits one GPU, FSDP when it does not"
    return f"{strategy}: {why}"


def tuning_schedule(a: dict, ctx: Context):
    """wizard.init.schedule.updates for the answers so far (the recommended value of any not yet given)."""
    from wizard.init.schedule import updates

    r = rec(a, ctx)
    v = {q.id: a[q.id] if q.id in a else r.get(q.spec, fields.default(q.spec))
         for q in QUESTIONS if q.tuning and q.spec}
    task, method = task_method(a)
    if task != "sft":
        v["batching"] = "rows"
    fits = None
    if ctx.gpus:
        # The memory verdict the recommendation measured: a pass of up to its fitted budget fits.
        fitted = ctx.recommend(model_id(a, ctx), task, method)
        if fitted.get("batch_tokens"):
            fits = lambda tokens, ckpt: (tokens <= fitted["batch_tokens"], 0.0)  # noqa: E731
    return updates(v, *dataset_rows(a, ctx), fits=fits)


def _interval(a: dict, ctx: Context, path: str) -> int:
    from wizard.init.schedule import MIN_LOGS, MIN_SAVES, scaled

    value = int(rec(a, ctx).get(path, fields.default(path)))
    s = tuning_schedule(a, ctx)
    return scaled(value, s.total, MIN_SAVES if path == "train.save_steps" else MIN_LOGS) if s else value


def _name_default(a: dict, ctx: Context) -> str:
    task, method = task_method(a)
    return f"{short_name(model_id(a, ctx))}-{task}-{method}"


Q = Question
QUESTIONS: list[Question] = [
    # The field's choices include auto and lack the wizard's own "demo" (the bundled model, hub auto): a
    # person picks where from, so the choices and their help are the wizard's.
    Q("hub", "select", 2, "Where should the model come from?", spec="model.hub",
      help="ModelScope and Hugging Face download on first use; a local folder or the bundled demo need no network.",
      default=lambda a, c: ("huggingface" if c.hubs.get("huggingface") else "modelscope")
      if c.gpus and any(c.hubs.values()) else "demo", choices=_hub_options),
    Q("hf_endpoint", "text", 2, "Hugging Face mirror endpoint (empty: huggingface.co)",
      help="Sets HF_ENDPOINT for downloads, e.g. https://hf-mirror.com; the summary prints the export line to "
           "reuse.",
      default=lambda a, c: os.environ.get("HF_ENDPOINT", ""),
      validate=lambda v, a, c: None if re.match(r"^https?://\S+$", v) else "a URL such as https://hf-mirror.com",
      when=lambda a, c: a.get("hub") == "huggingface", optional=True),
    # model, model_id and model_path each ask for one kind of model.id, so each has its own help.
    Q("model", "select", 3, "Which model?", spec="model.id",
      help=f"Marks: whether each method fits this machine at {fields.default('data.max_length')} tokens, from "
           "the memory estimate (? = unknown).",
      default=lambda a, c: c.default_model(a["hub"]), choices=_hub_model_options, other=_model_other,
      when=lambda a, c: a.get("hub") in ("huggingface", "modelscope")),
    Q("model_id", "text", 3, "Model id (owner/name)", spec="model.id",
      help="As on the hub's model page, e.g. Qwen/Qwen2.5-7B-Instruct.",
      validate=_check_model_id, when=lambda a, c: a.get("model") == "other"),
    Q("model_path", "path", 3, "Model folder", spec="model.id",
      help="A folder holding config.json and the weights (safetensors or .bin), or a .gguf file.",
      validate=_check_model_path, when=lambda a, c: a.get("hub") == "local"),
    # ms-swift's init script downloads first; here the run downloads when it starts, unless asked now (to train
    # offline, or on another machine from a copy of the folder): the spec then names the folder.
    Q("download", "confirm", 3, "Download the model now?",
      help="Yes saves it in a folder now and the spec trains from that folder (copy it to train elsewhere); no: "
           "the run downloads it into the hub's cache when it starts.",
      default=lambda a, c: False, when=lambda a, c: a.get("hub") in HUB_TITLES, may_skip=True),
    Q("download_to", "path", 3, "Save the model in", help="A new or empty folder (or a previous download's).",
      default=lambda a, c: f"models/{short_name(model_id(a, c))}", validate=_check_download_to,
      when=lambda a, c: a.get("hub") in HUB_TITLES and a.get("download") is True),
    # One answer sets task and method, so the choices are the pairs and the help speaks of both.
    Q("task", "select", 4, "What kind of training?", spec="task", also=("method",),
      help="SFT teaches from example conversations; DPO from preferred vs rejected answers.",
      default=_default_task, choices=_task_options),
    # Asked for DPO only, where the advice to start from an SFT run matters.
    Q("dpo_adapter", "path", 4, "Start from an SFT run folder (empty: from the base model)", spec="model.adapter",
      help="DPO works best on a model already tuned with SFT on similar data: give that run's folder.",
      validate=_check_adapter, when=lambda a, c: task_method(a)[0] == "dpo", optional=True),
    # dataset, dataset_path and dataset_hub each pick one kind of data.train source: their own help.
    Q("dataset", "select", 5, "Which dataset?", spec="data.train",
      help="Rows in messages, sharegpt, alpaca or query/response format (DPO: chosen/rejected pairs).",
      default=lambda a, c: next((o.value for o in _dataset_options(a, c)), "local"),
      choices=_dataset_options, other=_dataset_other),
    Q("dataset_path", "path", 5, "Dataset file", spec="data.train",
      help="Tab completes paths. The file is read now: its format, row count and first row are shown.",
      validate=_check_dataset_path, to_spec=lambda v: [{"path": str(v)}],
      when=lambda a, c: a.get("dataset") == "local"),
    Q("dataset_confirm", "confirm", 5, "Use this dataset?", help="No asks for another file.",
      default=lambda a, c: True, when=lambda a, c: a.get("dataset") == "local", back_to="dataset_path"),
    # The model's hub is the dataset's too (the spec names it on the source): the help says so.
    Q("dataset_hub", "text", 5, "Dataset id (owner/name, #N samples N rows)", spec="data.train",
      help="e.g. AI-ModelScope/alpaca-gpt4-data-en#500; downloaded from the model's hub (ModelScope or Hugging "
           "Face) when the run starts.",
      validate=_check_dataset_hub,
      when=lambda a, c: a.get("dataset") == "hub"),
    # Asked on a machine with several GPUs: the run then starts one process per GPU through torchrun.
    Q("gpus", "select", 6, "How many GPUs?", spec="distributed.gpus",
      help="Each GPU trains on its share of every update (DDP), or holds a share of the model (FSDP) when it is "
           "too big for one; the first choice says which this model takes.",
      default=lambda a, c: str(len(c.gpus)), choices=_gpu_options, to_spec=int,
      when=lambda a, c: len(c.gpus) > 1),
    Q("use_recommended", "confirm", 6, "Use the recommended settings?",
      help="Yes takes the values above; No asks for each of them.", default=lambda a, c: True),
    Q("lora_r", "number", 6, "LoRA rank", spec="lora.r", when=uses_adapter, tuning=True),
    Q("lora_alpha", "number", 6, "LoRA alpha", spec="lora.alpha", when=uses_adapter, tuning=True),
    Q("lr", "number", 6, "Learning rate", spec="train.lr", tuning=True),
    Q("epochs", "number", 6, "Epochs", spec="train.epochs", tuning=True),
    Q("max_length", "number", 6, "Max length (tokens)", spec="data.max_length", tuning=True),
    Q("batching", "select", 6, "Batching", spec="train.batching", tuning=True,
      when=lambda a, c: task_method(a)[0] == "sft"),
    Q("batch_tokens", "text", 6, "Tokens per forward pass (auto: the most that fits this GPU)",
      spec="train.batch_tokens", validate=_check_batch_tokens, to_spec=auto_or_whole, tuning=True,
      when=batches_tokens),
    Q("batch_size", "number", 6, "Rows per forward pass", spec="train.batch_size", tuning=True,
      when=lambda a, c: not batches_tokens(a, c)),
    # The default follows the batch size just answered, keeping the recommended total batch.
    Q("grad_accum", "text", 6, "Gradient accumulation (forward passes per update; auto: fitted)",
      spec="train.grad_accum", default=_grad_accum_default, validate=_check_auto_or_whole, to_spec=auto_or_whole,
      tuning=True),
    Q("advanced", "confirm", 6, "Change advanced settings?",
      help="Dropout, target modules, warmup, weight decay, scheduler, optimizer, saving, packing, eval split, seed.",
      default=lambda a, c: False, tuning=True),
    Q("lora_dropout", "number", 6, "LoRA dropout", spec="lora.dropout", when=uses_adapter, tuning=True,
      advanced=True),
    Q("target_modules", "text", 6, "LoRA target modules", spec="lora.target_modules", validate=check_targets,
      to_spec=targets, when=uses_adapter, tuning=True, advanced=True),
    Q("max_steps", "number", 6, "Stop after N steps (-1: run all epochs)", spec="train.max_steps", tuning=True,
      advanced=True),
    Q("warmup_ratio", "number", 6, "Warmup ratio", spec="train.warmup_ratio", tuning=True, advanced=True),
    Q("weight_decay", "number", 6, "Weight decay", spec="train.weight_decay", tuning=True, advanced=True),
    Q("scheduler", "select", 6, "Learning-rate schedule", spec="train.scheduler", tuning=True, advanced=True),
    Q("optimizer", "select", 6, "Optimizer", spec="train.optimizer", tuning=True, advanced=True),
    # Scaled to the updates the chosen dataset makes, so a small one still saves and logs several times.
    Q("save_steps", "number", 6, "Save a checkpoint every N steps", spec="train.save_steps", tuning=True,
      advanced=True, default=lambda a, c: _interval(a, c, "train.save_steps")),
    Q("logging_steps", "number", 6, "Log every N steps", spec="train.logging_steps", tuning=True, advanced=True,
      default=lambda a, c: _interval(a, c, "train.logging_steps")),
    Q("gradient_checkpointing", "select", 6, "Gradient checkpointing", spec="train.gradient_checkpointing",
      tuning=True, advanced=True),
    Q("packing", "confirm", 6, "Pack short rows together?", spec="data.packing", tuning=True, advanced=True,
      when=lambda a, c: task_method(a)[0] == "sft"),  # DPO reads pairs whole
    Q("eval_split", "number", 6, "Eval split", spec="data.eval_split", tuning=True, advanced=True),
    Q("seed", "number", 6, "Random seed", spec="train.seed", tuning=True, advanced=True),
    Q("dpo_beta", "number", 6, "DPO beta", spec="dpo.beta", when=lambda a, c: task_method(a)[0] == "dpo",
      tuning=True, advanced=True),
    Q("output_dir", "path", 7, "Folder for the runs", spec="output_dir",
      validate=lambda v, a, c: None if v.strip() and not Path(v).expanduser().is_file() else "a folder path"),
    # The wizard also names the spec file after the run, and defaults the name from the model and task.
    Q("name", "text", 7, "Run name", spec="name", help="Names the run folders and the spec file.",
      default=_name_default),
    Q("overwrite", "confirm", 8, "That file exists. Overwrite it?", help="No asks for another file name.",
      default=lambda a, c: False, when=lambda a, c: False),  # asked by the flow when the spec file exists
    Q("out_file", "path", 8, "Write the spec to", help="A new file; nothing existing is overwritten.",
      when=lambda a, c: False),
    Q("start", "confirm", 9, "Start training now?", help="Same as running the command shown above.",
      default=lambda a, c: True, when=lambda a, c: not c.no_start),
]
BY_ID = {q.id: q for q in QUESTIONS}
# When a question is asked, in words, for an answers-file key whose question the other answers skip.
_ADAPTER = f"method lora or qlora (task {', '.join(p for p in TASK_PAIRS if not p.endswith('-full'))})"
ASKED_WHEN = {
    "hf_endpoint": "hub: huggingface", "model": "hub: huggingface or modelscope",
    "model_id": "model: other (or a `model: owner/name`)", "model_path": "hub: local",
    "download": "hub: huggingface or modelscope", "download_to": "download: yes",
    "dpo_adapter": "a dpo task", "dpo_beta": "a dpo task", "dataset_path": "dataset: local (or a `dataset: FILE`)",
    "dataset_confirm": "dataset: local", "dataset_hub": "dataset: hub (or a `dataset: owner/name`)",
    "lora_r": _ADAPTER, "lora_alpha": _ADAPTER, "lora_dropout": _ADAPTER, "target_modules": _ADAPTER,
    "batching": "an sft task", "packing": "an sft task", "batch_tokens": "an sft task batching tokens",
    "batch_size": "batching: rows, or a dpo task",
}


def help_text(q: Question) -> str:
    return q.help or (fields.description(q.spec) if q.spec else "")


def options(q: Question, a: dict, ctx: Context) -> list:
    if q.choices:
        return q.choices(a, ctx)
    if q.kind == "select" and q.spec:
        return [Option(v, str(v)) for v in fields.choices(q.spec)]
    return []


def default(q: Question, a: dict, ctx: Context) -> Any:
    """The answer Enter (or --defaults) takes: the question's own, else the recommended, else the field's."""
    if q.default is not None:
        v = q.default(a, ctx)
    else:
        v = fields.default(q.spec) if q.spec else None
        if q.tuning and q.spec:
            v = rec(a, ctx).get(q.spec, v)
    if q.kind in ("text", "path"):
        v = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else ("" if v is None else v)
    return v


def spec_value(q: Question, answer: Any) -> Any:
    """An answer as the value its spec field holds."""
    if q.to_spec:
        return q.to_spec(answer)
    if q.kind == "number" and not q.integer:
        return float(answer)  # one spelling (3.0, not 3) whether typed, defaulted or read from a file
    return answer


def question_for(path: str) -> str | None:
    """The id of the first question whose answer sets this spec field."""
    return next((q.id for q in QUESTIONS if q.spec and path in (q.spec, *q.also)), None)
