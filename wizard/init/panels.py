"""The wizard's panels: the machine, the recommended settings, a dataset's first row, the summary with its
memory estimate, and what was written. A mixin of wizard.init.flow.Flow: each reads the flow's console,
context and answers, and asks nothing.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from wizard.estimate.batching import ROWS_PER_UPDATE, UPDATE_TOKENS
from wizard.init import answers as A
from wizard.init import questions as Qs


@dataclass(frozen=True)
class Fit:
    """The memory estimate's word on a spec: fits True/False, None when unknown."""

    fits: bool | None
    total_gb: float = 0.0
    avail: float | None = None
    where: str = ""
    change: str | None = None  # the one change that alone fits (wizard.estimate.fitting_change)


def fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def shown(path: Path) -> str:
    s = str(path)
    return s if path.is_absolute() or s.startswith(".") else f"./{s}"


def run_command(spec_file: Path, endpoint: str = "") -> str:
    """The one line that starts a run of the spec, with the mirror it was made with: shown in the box, the
    "Start it with" line and the spec's header alike."""
    env = f"HF_ENDPOINT={shlex.quote(endpoint)} " if endpoint else ""
    return f"{env}tune-wizard run {shlex.quote(shown(spec_file))}"


def rerun_command(answers_file: Path, spec_file: Path, name: str) -> str:
    """`tune-wizard init --answers FILE`, with --out when the spec file is not the one the run name gives."""
    cmd = f"tune-wizard init --answers {shlex.quote(shown(answers_file))}"
    return cmd + (f" --out {shlex.quote(shown(spec_file))}" if spec_file != Path(f"{name}.yaml") else "")


class Panels:
    def welcome(self) -> None:
        ctx, hw = self.ctx, self.ctx.hardware
        lines: list = []
        try:
            from wizard.hardware import describe

            lines = [Text(line) for line in describe(hw)] if hw is not None else []
        except Exception:  # noqa: BLE001 - an odd probe result: the short form below
            lines = [Text(f"GPU {g.index}: {g.name}, {g.total_gb:.1f} GiB ({g.free_gb:.1f} free)") for g in ctx.gpus]
        if not lines:
            lines = [Text("CPU only (or the machine could not be probed)")]
        if ctx.hubs_checked:
            hubs = ", ".join(f"{Qs.HUB_TITLES[h]} {'✓' if ok else '✗ (not answering)'}" for h, ok in ctx.hubs.items()
                             if h in Qs.HUB_TITLES)
        else:
            hubs = "not checked"
        lines.append(Text(f"hubs: {hubs}"))
        lines += [Text(note, style="dim") for note in ctx.notes]
        if ctx.previous_file is not None:
            lines.append(Text(f"defaults: your answers in {shown(ctx.previous_file)} (pass --defaults for the "
                              "recommended ones)", style="yellow"))
        intro = Text("Answer a few questions; get a run spec you can rerun; start training.\n"
                     "Enter takes the suggested answer, Esc goes back a question. Ctrl-C quits without writing "
                     "anything.\n")
        self.console.print(Panel(Group(intro, *lines), title="tune-wizard · this machine", title_align="left",
                                 border_style="cyan", expand=False))

    def tuning_values(self, a: dict) -> dict:
        """What the hyperparameter questions will answer if the recommended settings are taken: the answers
        file's value where it has one, else the default (which may follow an earlier one: grad_accum)."""
        v = dict(a)
        for q in Qs.QUESTIONS:
            if not (q.tuning and q.spec):
                continue
            try:
                v[q.id] = A.coerce(q, self.preset[q.id], v, self.ctx) if q.id in self.preset else None
            except ValueError:
                v[q.id] = None  # the question loop will say what is wrong with it
            if v[q.id] is None:
                v[q.id] = Qs.default(q, v, self.ctx)
        return v

    def recommended_panel(self, a: dict) -> None:
        r = self.tuning_values(a)
        task, method = Qs.task_method(a)
        t = Table(show_header=False, box=None, padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        if method != "full":
            t.add_row("LoRA", f"rank {fmt(r['lora_r'])}, alpha {fmt(r['lora_alpha'])}, "
                              f"dropout {fmt(r['lora_dropout'])}, modules {fmt(r['target_modules'])}")
        t.add_row("Learning rate", f"{fmt(r['lr'])}, {r['scheduler']} with warmup {fmt(r['warmup_ratio'])}")
        steps = f", at most {r['max_steps']} steps" if int(r["max_steps"]) > 0 else ""
        t.add_row("Epochs", fmt(r["epochs"]) + steps)
        sched = Qs.tuning_schedule(r, self.ctx)
        if sched:
            t.add_row("Updates", f"{sched.describe()}; a log line every {fmt(r['logging_steps'])}, a checkpoint "
                                 f"every {fmt(r['save_steps'])}")
        t.add_row("Max length", f"{fmt(r['max_length'])} tokens")
        t.add_row("Batch", self.batch_line(a, r))
        t.add_row("Optimizer", f"{r['optimizer']}; gradient checkpointing {r['gradient_checkpointing']}")
        why = Text(f"Why: {Qs.rec(a, self.ctx).get('reason', '')}", style="dim")
        self.console.print(Panel(Group(t, why), title=f"Recommended for {task} · {method}", title_align="left",
                                 border_style="green", expand=False))

    def batch_line(self, a: dict, r: dict) -> str:
        """What a forward pass and an update hold, with `auto` resolved as the run will on this machine."""
        if not Qs.batches_tokens(r, self.ctx):
            accum = r["grad_accum"] if r["grad_accum"] != "auto" else max(1, round(ROWS_PER_UPDATE / int(r["batch_size"])))
            return (f"{r['batch_size']} rows per pass (padded) × grad accum {accum} = "
                    f"{int(r['batch_size']) * int(accum)} rows per update")
        task, method = Qs.task_method(a)
        fitted = self.ctx.recommend(Qs.model_id(a, self.ctx), task, method)
        tokens = fitted["batch_tokens"] if r["batch_tokens"] == "auto" else int(r["batch_tokens"])
        accum = (max(1, round(UPDATE_TOKENS / tokens)) if r["batch_tokens"] != "auto" else fitted["grad_accum"]) \
            if r["grad_accum"] == "auto" else int(r["grad_accum"])
        sched = Qs.tuning_schedule(r, self.ctx)
        if sched is not None:  # the dataset's own size and lengths: the run's budget, a small one if it is small
            tokens, accum = sched.plan.batch_tokens, sched.plan.grad_accum
        line = f"by tokens: ~{tokens:,} tokens per pass{' (auto)' if r['batch_tokens'] == 'auto' else ''}"
        mean_tokens = Qs.dataset_rows(a, self.ctx)[1]
        if mean_tokens:
            line += f", ~{tokens / mean_tokens:.0f} rows of this dataset"
        return line + f"; {accum} per update (~{tokens * accum:,} tokens); whole rows, no padding"

    def dataset_panel(self, a: dict) -> None:
        try:
            p = self.ctx.preview(str(Path(a["dataset_path"]).expanduser()), Qs.task_method(a)[0])
        except ImportError:
            self.console.print("  [yellow]the dataset loader is not available: `tune-wizard validate` will check it[/]")
            return
        body = Text()
        for role, content in p.first:
            body.append(f"{role}: ", style="bold magenta" if role.startswith("assistant") else "bold cyan")
            body.append((content if len(content) <= 400 else content[:400] + " …") + "\n")
        head = Text(f"format {p.format} · {p.rows} rows\n", style="bold")
        notes = Text("".join(f"note: {n}\n" for n in p.notes), style="yellow")
        self.console.print(Panel(Group(head, Text("First example:", style="dim"), body, notes),
                                 title=str(a["dataset_path"]), title_align="left", expand=False))

    def summary(self, spec, spec_file: str, a: dict) -> Fit:
        """The spec about to be written, its memory estimate and how long it would take here."""
        from wizard.spec import yaml_writer as spec_yaml

        self._header(8)
        t = Table(title=f"The run spec ({spec_file})", title_justify="left", show_header=False, box=None,
                  padding=(0, 2))
        t.add_column(style="bold")
        t.add_column(overflow="fold")
        shown_spec = spec_yaml.relevant(spec)
        if spec.task == "dpo":  # DPO reads whole pairs and learns from the answers: SFT's two settings, unread
            for key in ("packing", "assistant_only_loss"):
                shown_spec["data"].pop(key, None)
        for section, value in shown_spec.items():
            if section == "version":
                continue
            if isinstance(value, dict):
                value = " · ".join(f"{k} {v}" for k, v in _flatten(value))
            t.add_row(section, fmt(value))
        sched = Qs.tuning_schedule(a, self.ctx)
        if sched:
            t.add_row("updates", f"{sched.describe()}; a log line every {spec.train.logging_steps}, a checkpoint "
                                 f"every {spec.train.save_steps}")
        self.console.print(t)
        fit = self.estimate_panel(spec)
        from wizard.init.review import duration_line

        duration_line(self, spec, a)
        return fit

    def done_panel(self, spec_file: Path, answers_file: Path, endpoint: str, name: str) -> None:
        """What was written and the commands that use it, with the names finally chosen."""
        lines = Text()
        lines.append("Spec file:  ", style="bold")
        lines.append(f"{shown(spec_file)}\n")
        lines.append("Answers:    ", style="bold")
        lines.append(f"{shown(answers_file)}\n")
        lines.append("Same again: ", style="bold")
        lines.append(f"{rerun_command(answers_file, spec_file, name)}\n")
        lines.append("Run it:     ", style="bold")
        lines.append(run_command(spec_file, endpoint))
        self.console.print(Panel(lines, expand=False, border_style="cyan"))

    def estimate_panel(self, spec) -> Fit:
        avail, where = self.ctx.memory()
        try:
            from wizard.estimate import estimate_for_spec, fitting_change, verdict
            from wizard.estimate.memory import part_rows

            b = estimate_for_spec(spec, self.ctx.hardware)
            fits, advice = verdict(b, avail) if avail else (None, [])
            change = fitting_change(b, avail) if fits is False else None
        except Exception as exc:  # noqa: BLE001 - the estimate is advice; the wizard goes on without it
            self.console.print(f"  [yellow]no memory estimate ({type(exc).__name__}: {exc})[/]")
            return Fit(None)
        t = Table(show_header=True, box=None, padding=(0, 2))
        t.add_column("part")
        t.add_column("GiB", justify="right")
        for label, gb in part_rows(b, self.ctx.device().get("device", "cuda")):
            t.add_row(label, f"{gb:.2f}")
        t.add_row("[bold]total[/]", f"[bold]{float(b.total_gb):.2f}[/]")
        if avail:
            mark = "[green]✓ fits[/]" if fits else "[red]✗ does not fit[/]"
            verdict_line = Text.from_markup(f"{mark} in {avail:.1f} GiB available ({where})")
        else:
            verdict_line = Text(f"available memory unknown ({where})", style="yellow")
        body = [t, verdict_line] + [Text(f"• {x}", style="yellow") for x in advice]
        body += [Text(str(n), style="dim") for n in getattr(b, "notes", [])[:3]]
        self.console.print(Panel(Group(*body), title="Memory estimate", title_align="left", expand=False,
                                 border_style="green" if fits else "yellow"))
        return Fit(fits, float(b.total_gb), avail, where, change)

    def fit_warning(self, fit: Fit, how: str) -> None:
        change = f"; the one change that fits: {fit.change}" if fit.change else ""
        self.console.print(Panel(Text.from_markup(
            f"[bold red]✗ The estimate says this run does not fit:[/] about {fit.total_gb:.1f} GiB needed, "
            f"{fit.avail:.1f} GiB available ({fit.where}); written anyway ({how}){change}. Training will likely "
            "stop out of memory: change the spec first (`tune-wizard estimate SPEC` explains the figure)."),
            border_style="red", expand=False))


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            yield from _flatten(v, key)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            yield key, ", ".join(str(s.get("path", s)) + (f"#{s['sample']}" if s.get("sample") else "")
                                 + (f" ({s['hub']})" if s.get("hub") not in (None, "auto") else "") for s in v)
        else:
            yield key, fmt(v)
