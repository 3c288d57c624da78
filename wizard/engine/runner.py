"""`tune-wizard run`: from a validated spec to a finished run folder, in five phases.

    prepare   the task's environment, the data, the run folder (new, or the one resumed) and its spec.yaml
    load      tokenizer and model
    build     the task's trainer, from TASKS
    fit       the training loop, from the checkpoint when resuming
    finalize  evaluation, the adapter, loss.png, and what the finished state says

Order matters for the user: everything that can be wrong with the input (spec, datasets, a TRL that DPO does not
support, the model id, output_dir, the free disk) is checked before a run folder exists or a model is loaded, so a
typo costs seconds, not a model download, and leaves nothing behind. The run folder has one writer: prepare takes
its lock (a resumed run that another process still trains is refused with that pid). load .. finalize run inside
a RunLifecycle, which owns state.json, train.log, the GPU sampler and the reporter, and writes how the run ended;
the whole run is inside a GracefulStop, so Ctrl-C and SIGTERM end it at a step boundary with a checkpoint.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard import run_folder as rf
from wizard import spec as specmod
from wizard.engine.lifecycle import RunLifecycle
from wizard.errors import SpecError
from wizard.monitor.reporting import Reporter, RunInfo
from wizard.spec import RunSpec, yaml_writer

# task -> the module that trains it. Each has check_environment() (run before anything loads),
# prepare_data(spec, tokenizer, train_examples, eval_examples, events) -> (train, eval, training tokens or None)
# (run before the model loads) and build_trainer(spec, model, tokenizer, train, eval, args, callbacks, events,
# plan, attention). Imported when a
# run of that task starts: torch and TRL are slow to import, and a spec typo should not wait for them.
TASKS = {"sft": "wizard.engine.sft", "dpo": "wizard.engine.dpo"}

# train.* fields a resumed run may change: how long it runs, how often it logs, saves, evaluates, how many
# checkpoints it keeps, and gradient checkpointing (memory only: the same numbers, so a run stopped by running out
# of memory can continue with it on).
RESUMABLE = ("max_steps", "epochs", "save_steps", "logging_steps", "eval_steps", "save_total_limit",
             "gradient_checkpointing")


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "peft", "bitsandbytes", "trl", "datasets", "accelerate", "tune-wizard"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def find_resume(spec: RunSpec, resume: str) -> tuple[Path, Path]:
    """(run folder, checkpoint) to continue: `auto` = newest complete checkpoint of the newest run."""
    if resume == "auto":
        for run in rf.runs_of(spec.output_dir, spec.name):
            ckpts = rf.complete_checkpoints(run)
            if ckpts:
                return run, ckpts[-1]
        raise SpecError(f"--resume: no run of '{spec.name}' under {spec.output_dir}/ has a complete checkpoint",
                        hint="start it without --resume, or pass --resume runs/<run> explicitly")
    p = Path(resume)
    if p.name.startswith("checkpoint-") and (p / rf.COMPLETE).is_file():
        return p.parent.parent, p
    ckpts = rf.complete_checkpoints(p)
    if not ckpts:
        raise SpecError(f"--resume {resume}: no complete checkpoint there (a checkpoint counts once its "
                        f"{rf.COMPLETE} marker is written)", hint="pass a run folder or one of its checkpoints")
    return p, ckpts[-1]


def same_run(saved: RunSpec, spec: RunSpec) -> bool:
    """Whether SPEC continues the run SAVED started: equal in what the run reads, except the RESUMABLE fields.

    Compared as the run folder's spec.yaml text, so a section the run never reads (dpo for an SFT run) does
    not count, by the same rule that leaves it out of the file."""
    keep = {name: getattr(saved.train, name) for name in RESUMABLE}
    # The number of processes is compared on its own, with its own message (runner._refuse_other_world).
    spec = spec.model_copy(update={"train": spec.train.model_copy(update=keep), "distributed": saved.distributed})
    return yaml_writer.render(saved) == yaml_writer.render(spec)


def _trim_metrics(run_dir: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint: they will be logged again."""
    path = run_dir / rf.METRICS
    rows = [r for r in rf.read_jsonl(path) if r.get("step", 0) <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class Prepared:
    """What the prepare phase found: the data, the model's folder and where the run lives."""

    task: Any                   # the TASKS module
    train: list
    eval: list
    warnings: list[str]
    run_dir: Path
    checkpoint: Path | None     # resuming from here
    model_path: Path
    lock: Any                   # the run folder's writer lock (released when train() returns)


@dataclass
class Loaded:
    tokenizer: Any
    model: Any
    precision: Any
    checkpointing: bool
    info: RunInfo
    train: Any          # the task's prepared data (prepare_data)
    eval: Any
    plan: Any           # the resolved batching (wizard.estimate.batching.Plan)
    attention: str      # the attn_implementation the model runs with
    strategy: str = "single"  # single | ddp | fsdp (wizard.estimate.strategy)


def train(spec: RunSpec, resume: str | None = None, reporter: Reporter | None = None,
          reporter_factory=None) -> Path:
    """Train SPEC; returns the run folder. Raises UserError on bad input.

    reporter_factory(run_dir, sampler=...) makes the reporter once the run folder exists, and is handed the
    run's GPU sampler (make_reporter fits); a `reporter` is used as is; neither: plain lines on stdout.
    """
    from functools import partial

    from wizard.engine import distributed
    from wizard.engine.memory_advice import out_of_memory_advice
    from wizard.engine.stopping import GracefulStop

    w = distributed.world()
    if w.distributed:  # the spec the run folder keeps says how many processes it ran on (plain torchrun too)
        per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", w.size))
        spec = spec.model_copy(update={"distributed": spec.distributed.model_copy(update={"gpus": per_machine})})
    distributed.init(w)
    try:
        with GracefulStop() as stop:
            p = prepare(spec, resume, w)
            try:
                with RunLifecycle(p.run_dir, {"name": spec.name, "model": spec.model.id, "task": spec.task,
                                              "method": spec.method}, reporter=reporter,
                                  reporter_factory=reporter_factory, world=w,
                                  oom_advice=partial(out_of_memory_advice, spec, p.model_path)) as run:
                    loaded = load(spec, p, run)
                    trainer = build(spec, p, loaded, run, stop)
                    with stop.in_training():
                        fit(trainer, p, run)
                    stop.raise_if_requested()  # the loop ended on a signal, after its checkpoint
                    finalize(spec, p, loaded, trainer, run)
            finally:
                p.lock.release()
    finally:
        distributed.shutdown()
    return p.run_dir


def prepare(spec: RunSpec, resume: str | None, w=None) -> Prepared:
    """The data (every process reads it), then, on rank 0 only, the model's folder and the run folder with its lock
    and spec.yaml; rank 0 tells the other processes where they are (or that it failed)."""
    from wizard.data.load import load_examples
    from wizard.engine import distributed

    w = w or distributed.World()
    task = importlib.import_module(TASKS[spec.task])
    task.check_environment()
    train_ex, eval_ex, report = load_examples(spec.data, task=spec.task, seed=spec.train.seed)
    warnings = list(getattr(report, "warnings", None) or [])
    if not w.distributed:
        return Prepared(task, train_ex, eval_ex, warnings, *_run_folder(spec, resume))
    if w.writer:
        try:
            found = _run_folder(spec, resume)
        except BaseException as exc:
            distributed.broadcast(("error", str(exc)), w)
            raise
        run_dir, checkpoint, model_path, lock = found
        distributed.broadcast(("ok", run_dir, checkpoint, model_path), w)
        return Prepared(task, train_ex, eval_ex, warnings, run_dir, checkpoint, model_path, lock)
    answer = distributed.broadcast(None, w)
    if answer[0] == "error":
        raise SpecError(f"rank 0 could not start the run: {answer[1]}")
    _, run_dir, checkpoint, model_path = answer
    return Prepared(task, train_ex, eval_ex, warnings, run_dir, checkpoint, model_path, _NoLock())


def check_before_launch(spec: RunSpec, resume: str | None, processes: int) -> tuple[Path | None, Path | None]:
    """What `prepare` checks, done once by the launcher of a run on several processes before it starts them: the
    data, output_dir, the model (downloaded here, once, not by every process at the same time) and the disk; and
    for --resume the run and checkpoint it continues (returned), which must have been trained on as many
    processes and have no process writing it now."""
    from wizard.data.load import load_examples
    from wizard.engine.preflight import check_disk, check_output_dir
    from wizard.model_source import resolve

    task = importlib.import_module(TASKS[spec.task])
    task.check_environment()
    load_examples(spec.data, task=spec.task, seed=spec.train.seed)
    check_output_dir(spec)
    check_disk(spec, Path(resolve(spec.model.id, spec.model.hub, spec.model.revision)))
    if not resume:
        return None, None
    run_dir, checkpoint = find_resume(spec, resume)
    if not same_run(specmod.load(run_dir / rf.SPEC), spec):
        raise SpecError(f"--resume: the spec differs from the one {run_dir.name} was started with "
                        "(model, data or hyperparameters)",
                        hint=f"resume with `tune-wizard run {run_dir / rf.SPEC} --resume`")
    _refuse_other_world(rf.read_json(run_dir / rf.RUN_INFO) or {}, processes, run_dir)
    _lock_or_refuse(run_dir).release()
    _refuse_finished(run_dir, spec)
    return run_dir, checkpoint


class _NoLock:
    """The run folder's lock as the other ranks hold it: rank 0 holds the real one for the run."""

    def release(self) -> None: ...


def _run_folder(spec: RunSpec, resume: str | None) -> tuple[Path, Path | None, Path, Any]:
    """(run folder, checkpoint to resume or None, the model's folder, the folder's lock): the model resolved and
    the output folder and disk checked first, so a typo leaves nothing behind."""
    from wizard.engine.distributed import RUN_DIR_ENV, clear_failures
    from wizard.engine.preflight import check_disk, check_output_dir
    from wizard.model_source import resolve

    check_output_dir(spec)
    model_path = Path(resolve(spec.model.id, spec.model.hub, spec.model.revision))
    check_disk(spec, model_path)
    checkpoint = None
    made = None
    if resume:
        run_dir, checkpoint = find_resume(spec, resume)
        if not same_run(specmod.load(run_dir / rf.SPEC), spec):
            raise SpecError(f"--resume: the spec differs from the one {run_dir.name} was started with "
                            "(model, data or hyperparameters)",
                            hint=f"resume with `tune-wizard run {run_dir / rf.SPEC} --resume`")
        lock = _lock_or_refuse(run_dir)
        try:
            _refuse_finished(run_dir, spec)
        except BaseException:
            lock.release()
            raise
        clear_failures(run_dir)
    else:
        given = os.environ.get(RUN_DIR_ENV)  # the launcher of a run on several GPUs made it (wizard.engine.launch)
        run_dir = made = Path(given) if given else rf.new_run_dir(spec.output_dir, spec.name)
        lock = _lock_or_refuse(run_dir)
    spec_path = run_dir / rf.SPEC
    try:
        yaml_writer.write(spec, spec_path, header=f"resolved spec of run {run_dir.name}\n"
                                                  f"repeat it: tune-wizard run {spec_path}")
    except BaseException:
        lock.release()
        if made is not None:  # a folder made for this run holds nothing yet: leave no empty run behind
            shutil.rmtree(made, ignore_errors=True)
        raise
    return run_dir, checkpoint, model_path, lock


def _lock_or_refuse(run_dir: Path):
    """The run folder's writer lock, or SpecError naming the process that writes it now."""
    lock = rf.take_lock(run_dir)
    if lock is None:
        state = rf.read_json(run_dir / rf.STATE) or {}
        pid = state.get("pid")
        who = f"process {pid}" if pid else "another process"
        raise SpecError(f"{run_dir}: {who} is training this run now ({state.get('status', 'running')}, step "
                        f"{state.get('step', 0)}); two processes must not write one run folder",
                        hint=f"watch it with `tune-wizard watch {run_dir}`; to take over, stop it first "
                             f"(Ctrl-C there{f', or kill -TERM {pid}' if pid else ''}: it saves a checkpoint), "
                             "then --resume")
    return lock


def _refuse_finished(run_dir: Path, spec: RunSpec) -> None:
    """A finished run resumes only to train further: with max_steps or epochs raised past where it ended."""
    state = rf.read_json(run_dir / rf.STATE) or {}
    if state.get("status") != "finished":
        return
    saved = specmod.load(run_dir / rf.SPEC).train
    t = spec.train
    ended = state.get("step") or max(saved.max_steps, 0)
    longer = (t.max_steps > ended if t.max_steps > 0 else
              saved.max_steps > 0 or t.epochs > saved.epochs)  # by epochs: further when there are more of them
    if longer:
        return
    if t.max_steps > 0:
        how = f"raise train.max_steps past {ended}, e.g. --set train.max_steps={2 * ended}"
    else:
        how = f"raise train.epochs past {saved.epochs:g}, e.g. --set train.epochs={saved.epochs * 2:g}"
    raise SpecError(f"--resume: {run_dir.name} already finished (step {ended}); resuming would train no further "
                    "and rewrite its adapter",
                    hint=f"to train it further, {how} --resume; to train again from the start, run without --resume")


def load(spec: RunSpec, p: Prepared, run: RunLifecycle) -> Loaded:
    from transformers import set_seed

    from wizard.data.render import ensure_chat_template
    from wizard.engine import attention as attn
    from wizard.engine import distributed, loader
    from wizard.engine.training_args import batching_plan, choose_gradient_checkpointing, choose_strategy
    from wizard.model_source import load_tokenizer

    w = run.world
    set_seed(spec.train.seed)
    # Rank 0 reads what the run started with before it rewrites the file, and every rank decides from that.
    previous = distributed.broadcast(rf.read_json(p.run_dir / rf.RUN_INFO) if p.checkpoint and w.writer else None, w)
    if previous is not None:
        _refuse_other_world(previous, w.size, p.run_dir)
    info = RunInfo(run_dir=str(p.run_dir), name=spec.name, model=spec.model.id, task=spec.task, method=spec.method,
                   total_steps=0, device=loader.device_label(w.size))
    for w in p.warnings:
        run.event(w, "warning")
    about = {
        "versions": library_versions(), "seed": spec.train.seed, "python": platform.python_version(),
        "host": platform.node(), "device": info.device, "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "resumed_from": str(p.checkpoint) if p.checkpoint else None,
        "data": {"train_rows": len(p.train), "eval_rows": len(p.eval)}, "world_size": w.size,
    }
    if w.writer:
        rf.write_json_atomic(p.run_dir / rf.RUN_INFO, about)
    run.event(f"loading {spec.model.id} ...")
    model_path = p.model_path
    tokenizer = load_tokenizer(model_path, spec.model.trust_remote_code)
    warning = ensure_chat_template(tokenizer)
    if warning:
        run.event(warning, "warning")
    cap = cap_gpu_memory()
    if cap:
        run.event(cap)
    # Tokenized before the model loads: a data problem costs seconds, and the batching plan needs the token count.
    train_data, eval_data, tokens = p.task.prepare_data(spec, tokenizer, p.train, p.eval, run.event)
    saved = (previous or {}).get("batching")
    if previous is not None and saved is None and isinstance(spec.train.grad_accum, int):
        # A run started before batching by tokens existed padded rows: it resumes as it started.
        saved = {"batching": "rows", "batch_tokens": None, "grad_accum": spec.train.grad_accum, "why": "rows"}
    precision = loader.choose_precision(spec.train.precision, spec.method)
    # Decided on rank 0 (from its GPU's free memory) and taken by all: every process must batch alike.
    if w.writer:
        strategy = (previous or {}).get("strategy") or choose_strategy(spec, model_path, w.size)
        plan = batching_plan(spec, model_path, tokens, saved=saved, world_size=w.size, strategy=strategy[0])
        ckpt_on, why = choose_gradient_checkpointing(spec, model_path, plan)
    strategy, plan, ckpt_on, why = distributed.broadcast((strategy, plan, ckpt_on, why) if w.writer else None, w)
    if w.distributed:
        run.event(f"{w.size} processes, {strategy[0]} ({strategy[1]})")
    try:
        config_file = Path(model_path) / "config.json"  # (model_path may be a .gguf file: no config then)
        config = (rf.read_json(config_file) if config_file.is_file() else None) or {}
        attention, attention_why = attn.choose(spec.train.attention, plan.batching, precision.name,
                                               config.get("text_config", config), spec.data.max_length)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    mean_row = tokens / max(len(p.train), 1) if tokens else None
    run.event(f"batching {plan.batching}: {plan.describe(mean_row)} ({plan.why}); attention {attention} "
              f"({attention_why})")
    run.event(f"precision {precision.name}; gradient checkpointing {'on' if ckpt_on else 'off'} ({why})")
    about["data"]["train_tokens"] = tokens
    about["batching"] = {"batching": plan.batching, "batch_tokens": plan.batch_tokens, "grad_accum": plan.grad_accum,
                         "checkpointing": plan.checkpointing, "why": plan.why, "processes": plan.processes}
    about["strategy"] = list(strategy)
    about["attention"] = attention
    if w.writer:
        rf.write_json_atomic(p.run_dir / rf.RUN_INFO, about)
    model, (trainable, total) = loader.build_model(spec, model_path, precision, ckpt_on, len(tokenizer), attention,
                                                   device=w.local_rank, sharded=strategy[0] == "fsdp")
    info.trainable_params, info.total_params = trainable, total
    run.event(f"trainable parameters: {trainable:,} of {total:,} ({100.0 * trainable / max(total, 1):.3f}%)")
    return Loaded(tokenizer, model, precision, ckpt_on, info, train_data, eval_data, plan, attention, strategy[0])


def _refuse_other_world(previous: dict, processes: int, run_dir: Path) -> None:
    """A run resumes on as many processes as it started with: each one's data order, random state (and with FSDP
    its shard of the optimizer) are in the checkpoint, and the global batch is per process x processes."""
    started = previous.get("world_size", 1)
    if started == processes:
        return
    raise SpecError(f"--resume: {run_dir.name} was trained on {started} process{'es' if started > 1 else ''} "
                    f"(GPUs); this run has {processes}",
                    hint=f"resume it with --gpus {started}; to go on with {processes}, start a new run from its "
                         f"checkpoint's adapter (model.adapter: {run_dir / rf.CHECKPOINTS}/checkpoint-N)")


def cap_gpu_memory() -> str | None:
    """Hold torch's allocator to --gpu-memory (hardware.GPU_MEMORY_ENV), so the run really stays within what its
    plan was fitted to; what was done, for the log."""
    import torch

    from wizard.hardware import gpu_memory_cap

    cap = gpu_memory_cap()
    if cap is None or not torch.cuda.is_available():
        return None
    device = torch.cuda.current_device()  # this process's GPU (each process of a run has its own)
    total = torch.cuda.get_device_properties(device).total_memory / 2**30
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
    return f"GPU memory: at most {min(cap, total):.1f} of {total:.1f} GiB (--gpu-memory)"


def build(spec: RunSpec, p: Prepared, loaded: Loaded, run: RunLifecycle, stop=None):
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from wizard.engine.callbacks import RunFolderCallback
    from wizard.engine.training_args import build_args

    args = build_args(spec, p.run_dir, loaded.precision, loaded.checkpointing, has_eval=bool(p.eval),
                      plan=loaded.plan, model=loaded.model, world_size=run.world.size, strategy=loaded.strategy)
    # SFT counts its tokens on each process's host (wizard.engine.sft); the Trainer's own count (DPO) is already
    # summed over the processes.
    callback = RunFolderCallback(run, loaded.info, stop, tokens_per_process=spec.task == "sft")
    trainer = p.task.build_trainer(spec, loaded.model, loaded.tokenizer, loaded.train, loaded.eval, args,
                                   [callback], run.event, loaded.plan, loaded.attention)
    # The reporter shows progress; the Trainer's own printer would print every log dict a second time.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def fit(trainer, p: Prepared, run: RunLifecycle) -> None:
    if p.checkpoint is not None:
        step = int(p.checkpoint.name.split("-")[-1])
        if run.world.writer:
            _trim_metrics(p.run_dir, step)
        if _nothing_left(trainer, p.checkpoint, step):
            # The checkpoint is the run's last step (it was stopped while writing its adapter). The Trainer, resumed
            # there, would train one step past the end; the checkpoint's weights and state are the result.
            from transformers import TrainerState

            trainer._load_from_checkpoint(str(p.checkpoint))
            trainer.state = TrainerState.load_from_json(str(p.checkpoint / "trainer_state.json"))
            run.event(f"resumed at step {step} of {step}: nothing left to train; writing the final adapter")
            return
    trainer.train(resume_from_checkpoint=str(p.checkpoint) if p.checkpoint else None)


def _nothing_left(trainer, checkpoint: Path, step: int) -> bool:
    saved = rf.read_json(checkpoint / "trainer_state.json") or {}
    args = trainer.args
    if args.max_steps > 0:
        return step >= args.max_steps
    return step >= saved.get("max_steps", step + 1) and args.num_train_epochs <= saved.get("num_train_epochs", 0)


def finalize(spec: RunSpec, p: Prepared, loaded: Loaded, trainer, run: RunLifecycle) -> None:
    from wizard.engine.callbacks import peak_memory_gb

    # The Trainer evaluates at its last step when that step is an evaluation step; a second pass would only
    # cost time and log the same row twice.
    # (From the Trainer's own log, which every process of a run keeps alike: they all evaluate, or none does.)
    evaluated = {r.get("step") for r in trainer.state.log_history if r.get("eval_loss") is not None}
    if p.eval and trainer.state.global_step not in evaluated:
        trainer.evaluate()  # it logs its metrics itself: one row in metrics.jsonl, one line on screen
    # Written beside, then renamed into place: a reader (chat, export, serve) never finds half an adapter.
    adapter, partial = p.run_dir / rf.ADAPTER, p.run_dir / rf.ADAPTER_PARTIAL
    if run.world.writer:
        shutil.rmtree(partial, ignore_errors=True)  # left by a run killed while writing it
    run.writing = partial
    trainer.save_model(str(partial))  # every process: with FSDP the weights are gathered; rank 0 writes them
    if not run.world.writer:
        return
    loaded.tokenizer.save_pretrained(str(partial))
    run.writing = None
    if adapter.exists():  # a finished run trained further
        old = p.run_dir / f".{rf.ADAPTER}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(adapter, old)
        os.replace(partial, adapter)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, adapter)
    plot = _loss_plot(p.run_dir, run)
    losses = [r["loss"] for r in rf.read_jsonl(p.run_dir / rf.METRICS) if r.get("loss") is not None]
    first, last = (losses[0], losses[-1]) if losses else (None, None)
    elapsed = round(time.time() - run.state["started_at"], 1)
    # The step the run ended at (the state's step otherwise follows the log lines, every logging_steps).
    run.finish(step=trainer.state.global_step, adapter_dir=str(adapter), final_loss=last, first_loss=first, elapsed_s=elapsed,
               peak_mem_gb=round(peak_memory_gb(), 3), loss_plot=str(plot) if plot else None,
               next_commands=[f"tune-wizard chat {p.run_dir}", f"tune-wizard export {p.run_dir} --merge",
                              f"tune-wizard serve {p.run_dir}"],
               message=f"{spec.name} finished in {elapsed:.0f} s; loss {first or 0:.4f} -> {last or 0:.4f}; "
                       f"adapter in {adapter}")


def _loss_plot(run_dir: Path, run: RunLifecycle) -> Path | None:
    from wizard.monitor.plots import save_loss_plot

    try:
        return save_loss_plot(run_dir)
    except Exception as exc:  # a plot must never fail a finished run
        run.event(f"loss.png not written: {exc}", "warning")
        return None


def train_file(path, overrides=None, resume=None, plain: bool = False) -> Path:
    """`tune-wizard run SPEC` and the wizard's "Start training now?": the spec file is all they share."""
    from functools import partial

    from wizard.monitor.live import make_reporter

    spec = specmod.load(path, overrides or [])
    return train(spec, resume=resume, reporter_factory=partial(make_reporter, plain=plain))
