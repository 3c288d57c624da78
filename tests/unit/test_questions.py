"""The wizard's questions as data, the answers -> spec mapping, and the commented YAML writer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wizard import spec as specmod
from wizard.catalog import lookup
from wizard.errors import SpecError
from wizard.init import answers as A
from wizard.init import questions as Qs
from wizard.init.context import Context
from wizard.spec import ALIASES, fields
from wizard.spec import yaml_writer as spec_yaml


@pytest.fixture
def ctx(monkeypatch, tmp_path) -> Context:
    monkeypatch.setenv("TUNE_WIZARD_OFFLINE", "1")
    return Context.probe(cwd=tmp_path)


@pytest.fixture
def chat_file(tmp_path) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"What is {i}+{i}?"},
                          {"role": "assistant", "content": str(2 * i)}]} for i in range(12)]
    p = tmp_path / "mine.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def test_questions_are_complete_data():
    ids = [q.id for q in Qs.QUESTIONS]
    assert len(ids) == len(set(ids)), "question ids must be unique (they are the answers-file keys)"
    for q in Qs.QUESTIONS:
        assert q.kind in ("select", "text", "confirm", "path", "number"), q.id
        assert q.prompt and Qs.help_text(q), f"{q.id}: every question needs a prompt and a help line"
        assert q.step in Qs.STEPS or q.step == 8, q.id
        if q.kind == "select":
            assert Qs.options(q, {"hub": "demo"}, Context()), q.id
        for path in filter(None, (q.spec, *q.also)):
            assert fields.exists(path), f"{q.id} sets {path}, which RunSpec does not have"
        if q.advanced:
            assert q.tuning, f"{q.id}: advanced questions sit inside the hyperparameter branch"
        if q.tuning and q.kind != "confirm":
            assert q.spec, f"{q.id}: a hyperparameter question sets a spec field"
    # The hyperparameters the brief lists are all askable.
    for qid in ("lora_r", "lora_alpha", "lr", "epochs", "max_length", "batch_size", "grad_accum", "lora_dropout",
                "target_modules", "warmup_ratio", "weight_decay", "scheduler", "optimizer", "save_steps",
                "logging_steps", "gradient_checkpointing", "packing", "eval_split", "seed"):
        assert qid in Qs.BY_ID


# ---------------------------------------------------------------- the spec field is the source of each question's facts

# Questions that set a field but say something of their own, each for the reason its comment in
# questions.py gives. A new override is a decision: add it here on purpose.
OWN_HELP = {"hub", "model", "model_id", "model_path", "task", "dpo_adapter", "dataset", "dataset_path",
            "dataset_hub", "name", "gpus"}
OWN_CHOICES = {"hub", "model", "task", "dataset", "gpus"}  # gpus: this machine's counts, the first with its strategy
OWN_DEFAULT = {"hub", "model", "task", "dataset", "grad_accum", "name", "gpus"}
SETS_A_FIELD = [q for q in Qs.QUESTIONS if q.spec]


def _outside(path: str) -> list:
    """A value just past each of the field's bounds."""
    step = 1 if fields.is_integer(path) else 0.01
    b = fields.bounds(path)
    return ([b["ge"] - step] if "ge" in b else []) + ([b["gt"]] if "gt" in b else []) + \
           ([b["le"] + step] if "le" in b else []) + ([b["lt"]] if "lt" in b else [])


def _spec_says(path: str, value) -> str:
    """What a spec file holding `value` at `path` is told, without the location and the echoed value."""
    raw = {"model": {"id": "m"}, "data": {"train": ["d.jsonl"]}}
    *sections, name = path.split(".")
    node = raw
    for s in sections:
        node = node.setdefault(s, {})
    node[name] = value
    with pytest.raises(SpecError) as e:
        specmod.from_dict(raw, source="spec")
    (line,) = e.value.problems
    assert line.startswith(f"spec: {path}: "), line
    return line.removeprefix(f"spec: {path}: ").rsplit(" (got ", 1)[0]


@pytest.mark.parametrize("q", SETS_A_FIELD, ids=lambda q: q.id)
def test_every_question_takes_its_fields_facts(q):
    ctx = Context()  # no machine, no hubs: the static facts only
    a = {"hub": "huggingface", "model": "other", "model_id": "someone/unknown-model", "task": "sft-lora",
         "dataset": "hub", "dataset_hub": "o/d"}
    # help: the field's description, unless the question says why it has its own
    assert (Qs.help_text(q) == fields.description(q.spec)) == (q.id not in OWN_HELP), q.id
    # choices: the field's Literal, in its order
    if q.kind == "select":
        values = [o.value for o in Qs.options(q, a, ctx)]
        assert (values == list(fields.choices(q.spec))) == (q.id not in OWN_CHOICES), q.id
    # number type: whole numbers for an int field
    assert q.integer == (q.kind == "number" and fields.is_integer(q.spec)), q.id
    # default: the field's own where nothing is recommended (an unknown model on an unknown machine)
    if q.id not in OWN_DEFAULT and q.spec not in Qs.rec(a, ctx):
        want = fields.default(q.spec)
        want = ",".join(want) if isinstance(want, list) else ("" if want is None else want)
        assert Qs.default(q, a, ctx) == want, q.id
    # bounds: a value just past each one is refused with the words the spec itself uses
    for value in _outside(q.spec):
        assert A.check(q, value, a, ctx) == _spec_says(q.spec, value), (q.id, value)
    if fields.bounds(q.spec):
        assert A.check(q, fields.default(q.spec), a, ctx) is None, q.id


def test_every_number_question_is_bounded_by_its_field():
    numbers = [q.id for q in Qs.QUESTIONS if q.kind == "number"]
    assert numbers and all(Qs.BY_ID[i].spec for i in numbers)
    # every one, seed included (numpy's seeds are 0 .. 2**32 - 1)
    assert [i for i in numbers if not fields.bounds(Qs.BY_ID[i].spec)] == []


def test_task_pairs_are_the_specs_allowed_task_and_method_pairs(ctx):
    allowed = {f"{t}-{m}" for t in ("sft", "dpo") for m in ("qlora", "lora", "full")} - {"dpo-full"}
    assert set(Qs.TASK_PAIRS) == allowed == set(Qs.TASK_TITLES)
    values = [o.value for o in Qs.options(Qs.BY_ID["task"], {"hub": "demo"}, ctx)]
    assert values == Qs.TASK_PAIRS
    for pair in values:  # each one builds a spec the spec accepts
        t, m = pair.split("-")
        assert specmod.task_method_problem(t, m) is None
    with pytest.raises(SpecError, match="task dpo needs method lora or qlora"):
        specmod.from_dict({"model": {"id": "m"}, "data": {"train": "d.jsonl"}, "task": "dpo", "method": "full"})


def test_coerce_types_and_messages(ctx):
    a = {"hub": "demo", "task": "sft-qlora"}
    assert A.coerce(Qs.BY_ID["lr"], "2e-4", a, ctx) == pytest.approx(2e-4)
    assert A.coerce(Qs.BY_ID["lora_r"], "16", a, ctx) == 16
    with pytest.raises(ValueError, match="whole number"):
        A.coerce(Qs.BY_ID["lora_r"], "8.5", a, ctx)
    with pytest.raises(ValueError, match="a number"):
        A.coerce(Qs.BY_ID["epochs"], "three", a, ctx)
    assert A.coerce(Qs.BY_ID["packing"], "yes", a, ctx) is True
    assert A.coerce(Qs.BY_ID["task"], "SFT-LoRA", a, ctx) == "sft-lora"
    with pytest.raises(ValueError, match="one of: sft-qlora"):
        A.coerce(Qs.BY_ID["task"], "rlhf", a, ctx)
    assert A.check(Qs.BY_ID["lr"], 1.5, a, ctx) == "Input should be less than 1"
    assert A.check(Qs.BY_ID["name"], "my run", a, ctx).startswith("letters, digits")
    assert A.check(Qs.BY_ID["target_modules"], "q_proj, v_proj", a, ctx) is None
    assert A.check(Qs.BY_ID["target_modules"], "q proj", a, ctx).startswith("auto, all-linear, or module names")
    assert A.check(Qs.BY_ID["scheduler"], "cosine", a, ctx) is None
    assert Qs.targets("q_proj, v_proj") == ["q_proj", "v_proj"]
    assert Qs.targets("all-linear") == "all-linear"


def test_model_and_dataset_validators(ctx, tmp_path, chat_file):
    a = {"hub": "huggingface", "task": "sft-qlora"}
    assert "owner/name" in A.check(Qs.BY_ID["model_id"], "qwen", a, ctx)
    assert A.check(Qs.BY_ID["model_id"], "Qwen/Qwen2.5-0.5B", a, ctx) is None  # hubs offline: unchecked, allowed
    folder = tmp_path / "m"
    folder.mkdir()
    assert "config.json" in A.check(Qs.BY_ID["model_path"], str(folder), a, ctx)
    (folder / "config.json").write_text("{}")
    assert A.check(Qs.BY_ID["model_path"], str(folder), a, ctx) is None
    assert A.check(Qs.BY_ID["dataset_path"], str(chat_file), a, ctx) is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "hi"}\n{"foo": 1}\n')
    msg = A.check(Qs.BY_ID["dataset_path"], str(bad), a, ctx)
    assert msg and "bad.jsonl" in msg
    assert "no file" in A.check(Qs.BY_ID["dataset_path"], str(tmp_path / "nope.jsonl"), a, ctx)
    assert A.check(Qs.BY_ID["dataset_hub"], "AI-ModelScope/alpaca-gpt4-data-en#500", a, ctx) is None
    assert A.check(Qs.BY_ID["dataset_hub"], "alpaca#x", a, ctx) == "owner/name or owner/name#N"
    assert "adapter" in A.check(Qs.BY_ID["dpo_adapter"], str(folder), a, ctx)
    assert A.check(Qs.BY_ID["dpo_adapter"], "", a, ctx) is None


def _defaults(a: dict, ctx: Context) -> dict:
    """Every applicable question answered with its default, as --defaults does."""
    for q in Qs.QUESTIONS:
        if q.id in a or q.id in ("overwrite", "out_file", "start") or not q.when(a, ctx):
            continue
        a[q.id] = Qs.default(q, a, ctx)
    return a


@pytest.mark.parametrize("task", ["sft-qlora", "sft-lora", "sft-full", "dpo-lora", "dpo-qlora"])
def test_defaults_build_a_valid_spec_for_every_task(ctx, tmp_path, chat_file, task):
    pref = tmp_path / "pref.jsonl"
    pref.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."}) + "\n")
    a = _defaults({"hub": "demo", "task": task, "dataset": "local",
                   "dataset_path": str(pref if task.startswith("dpo") else chat_file)}, ctx)
    spec = specmod.from_dict(A.build_spec_dict(a, ctx, tmp_path / "x.yaml"))
    t, m = task.split("-")
    assert (spec.task, spec.method) == (t, m)
    assert spec.model.id == ctx.demo_alias()
    assert spec.data.train[0].path == Path(a["dataset_path"]).name  # relative to the spec's folder
    assert spec.train.optimizer == "adamw_torch" and spec.train.scheduler == "cosine"
    if t == "sft":  # batched by tokens, fitted to the GPU and the data when the run starts
        assert (spec.train.batching, spec.train.batch_tokens, spec.train.grad_accum) == ("tokens", "auto", "auto")
    else:
        assert spec.train.batch_size * spec.train.grad_accum in range(8, 33)
    if m == "full":
        assert "lora" not in A.build_spec_dict(a, ctx, tmp_path / "x.yaml")
        assert spec.train.lr <= 5e-5
    else:
        assert (spec.lora.r, spec.lora.alpha) == (8, 32)


def test_answers_map_to_spec_keys(ctx, tmp_path, chat_file):
    a = _defaults({"hub": "local", "model_path": str(tmp_path), "task": "sft-lora", "dataset": "hub",
                   "dataset_hub": "owner/data#300", "use_recommended": False, "lora_r": 32, "lr": 1e-4,
                   "advanced": True, "target_modules": "q_proj,k_proj", "gradient_checkpointing": "off",
                   "packing": True, "seed": 7, "name": "mine", "output_dir": "out"}, ctx)
    d = A.build_spec_dict(a, ctx, Path("/elsewhere/mine.yaml"))
    spec = specmod.from_dict(d)
    assert spec.model.id == str(tmp_path.resolve()) and spec.model.hub == "local"
    assert spec.data.train[0].path == "owner/data" and spec.data.train[0].sample == 300
    assert spec.lora.r == 32 and spec.lora.target_modules == ["q_proj", "k_proj"]
    assert spec.train.lr == 1e-4 and spec.train.gradient_checkpointing == "off" and spec.train.seed == 7
    assert spec.data.packing is True and spec.output_dir == "out" and spec.name == "mine"


def test_grad_accum_keeps_total_batch_near_16(ctx):
    a = _defaults({"hub": "huggingface", "model": "other", "model_id": "someone/unknown-model",
                   "task": "dpo-qlora", "dataset": "hub", "dataset_hub": "o/d"}, ctx)
    assert a["batch_size"] * a["grad_accum"] == 16 and "batching" not in a and "batch_tokens" not in a
    a2 = dict(a, batch_size=4)
    assert Qs.default(Qs.BY_ID["grad_accum"], a2, ctx) == 4
    # SFT batches by tokens: no rows question, the budget and accumulation fitted when the run starts
    s = _defaults({"hub": "huggingface", "model": "other", "model_id": "someone/unknown-model",
                   "task": "sft-qlora", "dataset": "hub", "dataset_hub": "o/d"}, ctx)
    assert (s["batching"], s["batch_tokens"], s["grad_accum"]) == ("tokens", "auto", "auto") and "batch_size" not in s
    bt = Qs.BY_ID["batch_tokens"]
    assert A.check(bt, "1024", dict(s, max_length=2048), ctx) == ("at least the max length (2048): a full row must "
                                                                   "fit in a forward pass")
    assert A.check(bt, "lots", s, ctx) == "auto or a whole number" and A.check(bt, "8192", s, ctx) is None
    assert Qs.spec_value(bt, "8192") == 8192 and Qs.spec_value(bt, "AUTO") == "auto"


def test_nearest_question_id():
    assert A.nearest_id("learning_rate") == "lr"
    assert A.nearest_id("lora_rank") == "lora_r"
    assert A.nearest_id("datset") == "dataset"
    # A spec path or field name leads to the question that sets it.
    assert A.nearest_id("train.lr") == "lr" and A.nearest_id("r") == "lora_r" and A.nearest_id("beta") == "dpo_beta"
    assert A.nearest_id("method") == "task"


@pytest.mark.parametrize("alias,path", sorted(ALIASES.items()))
def test_one_alias_table_serves_answers_and_the_spec(alias, path):
    """Every alias of wizard/spec/aliases.py gives both hints: --answers names the question that sets the
    field, a spec file names the field (in its own section by name, anywhere else by its whole path)."""
    qid = A.nearest_id(alias)
    assert qid and path in (Qs.BY_ID[qid].spec, *Qs.BY_ID[qid].also), (alias, qid)
    parent, _, leaf = path.rpartition(".")
    placements = [("", path if parent else leaf)]
    if parent and alias != leaf:
        placements.append((parent, leaf))
    for where, hint in placements:
        raw = {"model": {"id": "m"}, "data": {"train": ["d.jsonl"]}}
        node = raw
        for s in filter(None, where.split(".")):
            node = node.setdefault(s, {})
        node[alias] = 1
        with pytest.raises(SpecError) as e:
            specmod.from_dict(raw)
        key = f"{where}.{alias}" if where else alias
        assert f"spec: {key}: unknown key; did you mean '{hint}'?" in e.value.problems, e.value.problems


# ---------------------------------------------------------------- commented YAML

def yaml_comments(text: str) -> dict:
    """{dotted field path: its comment} for every key of a rendered spec (beside the key, or on the line above)."""
    out, stack, above = {}, [], None
    for line in text.splitlines():
        body = line.lstrip()
        indent = len(line) - len(body)
        if body.startswith("# "):
            above = body[2:]
            continue
        item = body.startswith("- ")
        if item:
            body, indent = body[2:], indent + 2
        key_part, beside, comment = body.partition("  # ")
        key = key_part.split(":")[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if item and not stack[-1][1].endswith("[]"):
            stack[-1] = (stack[-1][0], stack[-1][1] + "[]")  # the list's items: data.train[].path
        if ":" in key_part:
            out[".".join([k for _, k in stack] + [key])] = comment if beside else above
            stack.append((indent, key))
        above = None
    return out


FULL = {"name": "every-field", "task": "dpo", "method": "qlora",
        "model": {"id": "o/m", "hub": "huggingface", "revision": "main", "adapter": "/runs/sft",
                  "trust_remote_code": True},
        "data": {"train": [{"path": "o/d", "format": "alpaca", "hub": "modelscope", "split": "test",
                            "subset": "en", "columns": {"q": "instruction"}, "sample": 5}],
                 "eval": [{"path": "e.jsonl", "format": "messages", "hub": "local", "split": "dev", "subset": "x",
                           "columns": {"a": "output"}, "sample": 2}],
                 "system": "Be brief.", "eval_split": 0.1},
        "train": {"eval_steps": 10}, "distributed": {"gpus": 2, "strategy": "fsdp"}}


def test_the_yaml_comments_are_the_field_descriptions():
    spec = specmod.from_dict(FULL)
    comments = yaml_comments(spec_yaml.render(spec))
    assert set(comments) == set(fields.paths()), "a spec with every field set shows every field"
    for path, comment in comments.items():
        assert comment == fields.description(path) != "", path


@pytest.mark.parametrize("raw", [
    {"name": "a", "model": {"id": "smollm2-135m-instruct"}, "data": {"train": ["d.jsonl#5"]}},
    {"name": "b", "model": {"id": "Qwen/Qwen2.5-7B-Instruct", "hub": "modelscope", "adapter": "/x/run"},
     "task": "dpo", "method": "lora", "lora": {"target_modules": ["q_proj", "v_proj"]},
     "data": {"train": [{"path": "o/d", "split": "test", "columns": {"q": "prompt"}}, "e.jsonl"],
              "system": "Be brief: yes # really", "eval_split": 0.1},
     "train": {"lr": 5e-6, "save_total_limit": None, "eval_steps": 10}, "dpo": {"beta": 0.2}},
    {"name": "c", "model": {"id": "m"}, "method": "full", "data": {"train": ["x.jsonl"], "eval": ["y.jsonl"]},
     "train": {"lr": 1e-5, "gradient_checkpointing": "on"}},
])
def test_commented_yaml_round_trips(tmp_path, raw):
    spec = specmod.from_dict(raw)
    path = spec_yaml.write(spec, tmp_path / "s.yaml", header="written by a test\nrun: tune-wizard run s.yaml")
    text = path.read_text()
    assert text.startswith("# written by a test\n")
    loaded = specmod.load(path)
    assert loaded.to_dict() == spec.to_dict()
    # A comment on every field line (beside it, or on the line above).
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if line.lstrip().startswith(("#", "- ")) and ":" not in line.split("#")[0]:
            continue
        if ":" in line and not line.lstrip().startswith("#"):
            assert "  # " in line or lines[n - 1].lstrip().startswith("# "), f"no comment: {line!r}"
    # Sections the run won't read are left out, so the file says only what matters.
    top = {line.split(":")[0] for line in lines if line and line[0].isalpha()}
    assert ("dpo" in top) == (spec.task == "dpo")
    assert ("quant" in top) == (spec.method == "qlora")
    assert ("lora" in top) == (spec.method != "full")
    assert not list(tmp_path.glob(".s.yaml.tmp-*"))


def test_yaml_scalars_keep_their_type():
    for v in (2e-4, 1e-5, 3.0, "on", "yes", "a#b", "x: y", True, None, 16):
        assert yaml.safe_load(f"k: {spec_yaml.scalar(v)}")["k"] == v


# ---------------------------------------------------------------- hardware-aware defaults and panels

def _machine(gpu_gb: float | None):
    """A machine as wizard.hardware.detect() describes it: one A10-like GPU of `gpu_gb`, or none."""
    from wizard.hardware import GpuInfo, Hardware

    gpus = [GpuInfo(index=0, name="NVIDIA A10", total_gb=gpu_gb, free_gb=gpu_gb - 0.5, bf16=True,
                    compute_capability=(8, 6))] if gpu_gb else []
    return Hardware(gpus=gpus, cpu_count=8, ram_total_gb=64.0, ram_available_gb=48.0, cpu_bf16=False,
                    cuda_available=bool(gpus), disk_free_gb=123.4)


def test_defaults_follow_the_machine(tmp_path):
    a10 = Context(hardware=_machine(24), hubs={"huggingface": True, "modelscope": False}, hubs_checked=True)
    hub_q, model_q = Qs.BY_ID["hub"], Qs.BY_ID["model"]
    assert Qs.default(hub_q, {}, a10) == "huggingface"
    assert Qs.default(model_q, {"hub": "huggingface"}, a10) == "qwen2.5-7b-instruct"
    marks = a10.fit_marks("qwen2.5-7b-instruct")
    assert marks.startswith("✓ qlora") and marks.endswith("✗ full")
    titles = [o.title for o in Qs.options(model_q, {"hub": "huggingface"}, a10)]
    assert any(t.startswith("qwen2.5-7b-instruct") and "✓ qlora" in t for t in titles)
    a = {"hub": "huggingface", "model": "qwen2.5-7b-instruct"}
    task = Qs.default(Qs.BY_ID["task"], a, a10)
    assert task in ("sft-qlora", "sft-lora")
    assert [o for o in Qs.options(Qs.BY_ID["task"], a, a10) if o.value == task][0].title.count("recommended") == 1
    # Choosing more than the machine holds keeps the choice but makes its settings as lean as they go.
    full = a10.settings_for("qwen2.5-7b-instruct", "dpo", "lora")
    assert (full["train.batch_size"], full["train.gradient_checkpointing"]) == (1, "on")
    assert full["train.grad_accum"] == 16
    full = a10.settings_for("qwen2.5-7b-instruct", "sft", "full")
    assert (full["train.lr"], full["train.batch_tokens"], full["train.gradient_checkpointing"]) == (1e-5, "auto", "auto")
    assert full["data.max_length"] < 2048
    lean = a10.recommend("qwen2.5-7b-instruct", "sft", "full")
    assert lean["batch_tokens"] == full["data.max_length"] and lean["gradient_checkpointing"] is True
    # A small GPU gets a smaller model; no GPU gets the demo, whatever the hubs say.
    small = Context(hardware=_machine(6), hubs={"huggingface": True, "modelscope": True}, hubs_checked=True)
    picked = Qs.default(model_q, {"hub": "huggingface"}, small)
    assert lookup(picked).params_b < 7 and small.fits(picked, "qlora"), picked
    cpu = Context(hardware=_machine(None), hubs={"huggingface": True, "modelscope": True}, hubs_checked=True)
    assert Qs.default(hub_q, {}, cpu) == "demo"


def test_welcome_and_recommended_panels_show_the_machine_and_the_values():
    from rich.console import Console

    from wizard.init.flow import Flow

    ctx = Context(hardware=_machine(24), hubs={"huggingface": True, "modelscope": False}, hubs_checked=True)
    console = Console(record=True, width=100, color_system=None)
    flow = Flow(ctx, console, interactive=False, use_defaults=True)
    flow.welcome()
    a = {"hub": "huggingface", "model": "qwen2.5-7b-instruct", "task": "sft-qlora", "dataset": "hub"}
    flow.recommended_panel(a)
    text = console.export_text()
    assert "GPU 0: NVIDIA A10, 24.0 GiB (23.5 free), bf16" in text
    assert "123.4 GiB free" in text and "Hugging Face ✓, ModelScope ✗ (not answering)" in text
    assert "rank 8, alpha 32" in text and "Why:" in text
    fitted = ctx.recommend("qwen2.5-7b-instruct", "sft", "qlora")
    assert (f"by tokens: ~{fitted['batch_tokens']:,} tokens per pass (auto); {fitted['grad_accum']} per update"
            in text), text
