"""`tune-wizard run`: from a validated spec to a finished run folder.

Order matters for the user: everything that can be wrong with the input (spec, datasets, model path) is
checked before the model is loaded, so a typo costs seconds, not a model download.
"""
from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path

from wizard import run_folder as rf
from wizard import spec as specmod
from wizard.errors import SpecError
from wizard.monitor.reporting import PlainReporter, Reporter, RunInfo
from wizard.spec import RunSpec


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


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / rf.LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("wizard", "transformers", "peft"):
        logging.getLogger(name).addHandler(handler)
    # Only our own logger goes to INFO: raising transformers' level would also print its INFO lines
    # on the terminal through its own handler. Its warnings still reach train.log.
    logging.getLogger("wizard").setLevel(logging.INFO)
    # The reporter already shows our events; without this Python's last-resort handler prints warnings twice.
    logging.getLogger("wizard").propagate = False
    return handler


def _trim_metrics(run_dir: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint: they will be logged again."""
    path = run_dir / rf.METRICS
    rows = [r for r in rf.read_jsonl(path) if r.get("step", 0) <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def train(spec: RunSpec, resume: str | None = None, reporter: Reporter | None = None,
          reporter_factory=None) -> Path:
    """Train `spec`; returns the run folder. Raises UserError on bad input."""
    from wizard.data.load import load_examples

    # 1. Input checks that need no model.
    train_ex, eval_ex, report = load_examples(spec.data, task=spec.task, seed=spec.train.seed)

    # 2. The run folder (new, or the one being resumed).
    checkpoint = None
    if resume:
        run_dir, checkpoint = find_resume(spec, resume)
        saved = specmod.load(run_dir / rf.SPEC)
        if saved.model_dump(exclude={"train": {"max_steps", "epochs", "save_steps", "logging_steps", "eval_steps"}}) != \
                spec.model_dump(exclude={"train": {"max_steps", "epochs", "save_steps", "logging_steps", "eval_steps"}}):
            raise SpecError(f"--resume: the spec differs from the one {run_dir.name} was started with "
                            "(model, data or hyperparameters)", hint=f"resume with `tune-wizard run {run_dir / rf.SPEC} --resume`")
    else:
        run_dir = rf.new_run_dir(spec.output_dir, spec.name)
    spec_path = run_dir / rf.SPEC
    specmod.dump(spec, spec_path, header=f"# resolved spec of run {run_dir.name}\n"
                                         f"# repeat it: tune-wizard run {spec_path}\n")
    handler = _setup_logging(run_dir)
    if reporter is None:
        reporter = reporter_factory(run_dir) if reporter_factory else PlainReporter()
    state = {"status": "starting", "name": spec.name, "model": spec.model.id, "task": spec.task,
             "method": spec.method, "run_dir": str(run_dir), "started_at": time.time(), "pid": os.getpid()}
    rf.write_json_atomic(run_dir / rf.STATE, state)
    from wizard.monitor import start_sampler

    # gpu.jsonl is written whatever the reporter, so `tune-wizard watch` works for nohup runs too.
    sampler = start_sampler(run_dir)
    try:
        return _train_in(spec, run_dir, checkpoint, train_ex, eval_ex, report, reporter, state)
    finally:
        sampler.stop()
        for name in ("wizard", "transformers", "peft"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()


def _train_in(spec, run_dir, checkpoint, train_ex, eval_ex, report, reporter, state) -> Path:
    import torch
    from transformers import set_seed

    from wizard.engine import loader
    from wizard.engine.callbacks import RunFolderCallback, peak_memory_gb
    from wizard.engine.training_args import build_args, choose_gradient_checkpointing
    from wizard.model_source import load_tokenizer, resolve

    log = logging.getLogger("wizard.run")
    set_seed(spec.train.seed)
    info = RunInfo(run_dir=str(run_dir), name=spec.name, model=spec.model.id, task=spec.task, method=spec.method,
                   total_steps=0, device=loader.device_label())

    def events(text, level="info"):
        getattr(log, "warning" if level == "warning" else "info")(text)
        reporter.on_event(text, level)

    for w in getattr(report, "warnings", []) or []:
        events(w, "warning")
    rf.write_json_atomic(run_dir / rf.RUN_INFO, {
        "versions": library_versions(), "seed": spec.train.seed, "python": platform.python_version(),
        "host": platform.node(), "device": info.device, "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "resumed_from": str(checkpoint) if checkpoint else None,
        "data": {"train_rows": len(train_ex), "eval_rows": len(eval_ex)},
    })
    events(f"loading {spec.model.id} ...")
    model_path = resolve(spec.model.id, spec.model.hub, spec.model.revision)
    tokenizer = load_tokenizer(model_path, spec.model.trust_remote_code)
    from wizard.data.render import ensure_chat_template

    warning = ensure_chat_template(tokenizer)
    if warning:
        events(warning, "warning")
    precision = loader.choose_precision(spec.train.precision, spec.method)
    ckpt_on, why = choose_gradient_checkpointing(spec, model_path)
    events(f"precision {precision.name}; gradient checkpointing {'on' if ckpt_on else 'off'} ({why})")
    model, (trainable, total) = loader.build_model(spec, model_path, precision, ckpt_on, len(tokenizer))
    info.trainable_params, info.total_params = trainable, total
    events(f"trainable parameters: {trainable:,} of {total:,} ({100.0 * trainable / max(total, 1):.3f}%)")

    args = build_args(spec, run_dir, precision, ckpt_on, has_eval=bool(eval_ex))
    callback = RunFolderCallback(run_dir, info, reporter, state)
    if spec.task == "dpo":
        from wizard.engine.dpo import build_trainer
    else:
        from wizard.engine.sft import build_trainer
    trainer = build_trainer(spec, model, tokenizer, train_ex, eval_ex, args, [callback], events)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # The reporter shows progress; the Trainer's own printer would print every log dict a second time.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if checkpoint is not None:
        _trim_metrics(run_dir, int(checkpoint.name.split("-")[-1]))
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except KeyboardInterrupt:
        callback.write_state(status="interrupted", message="interrupted; continue with --resume",
                             ended_at=time.time())
        reporter.on_end(state)
        reporter.close()
        raise
    except Exception as exc:
        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        if isinstance(exc, torch.OutOfMemoryError):
            msg += (" — out of GPU memory: see `tune-wizard estimate` and lower data.max_length or "
                    "train.batch_size, or use method qlora / gradient_checkpointing on")
        callback.write_state(status="failed", message=msg, ended_at=time.time())
        reporter.on_end(state)
        reporter.close()
        raise

    if eval_ex:
        metrics = trainer.evaluate()
        trainer.log(metrics)
    adapter = run_dir / rf.ADAPTER
    trainer.save_model(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    plot = _loss_plot(run_dir, events)
    rows = rf.read_jsonl(run_dir / rf.METRICS)
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    final = dict(status="finished", ended_at=time.time(), adapter_dir=str(adapter),
                 final_loss=losses[-1] if losses else None, first_loss=losses[0] if losses else None,
                 elapsed_s=round(time.time() - state["started_at"], 1), peak_mem_gb=round(peak_memory_gb(), 3),
                 loss_plot=str(plot) if plot else None,
                 next_commands=[f"tune-wizard chat {run_dir}", f"tune-wizard export {run_dir} --merge",
                                f"tune-wizard serve {run_dir}"])
    final["message"] = (f"{spec.name} finished in {final['elapsed_s']:.0f} s; loss {final['first_loss'] or 0:.4f} -> "
                        f"{final['final_loss'] or 0:.4f}; adapter in {adapter}")
    callback.write_state(**final)
    reporter.on_end(state)
    reporter.close()
    return run_dir


def _loss_plot(run_dir: Path, events) -> Path | None:
    from wizard.monitor.plots import save_loss_plot

    try:
        return save_loss_plot(run_dir)
    except Exception as exc:  # a plot must never fail a finished run
        events(f"loss.png not written: {exc}", "warning")
        return None


def train_file(path, overrides=None, resume=None, plain: bool = False) -> Path:
    """`tune-wizard run SPEC` and the wizard's "Start training now?": the spec file is all they share."""
    from functools import partial

    from wizard.monitor.live import make_reporter

    spec = specmod.load(path, overrides or [])
    return train(spec, resume=resume, reporter_factory=partial(make_reporter, plain=plain))
