"""The wizard's flow: the questions of wizard.init.questions in order, Rich panels between them, a spec at the end.

One loop serves the three ways in: a person at a terminal, `--answers FILE` and `--defaults`. For each
question an answers-file value wins, then `--defaults` (or a question the recommended settings cover)
takes the default, and only then is the person asked. Nothing is written before the summary, so Ctrl-C
anywhere leaves no file behind.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from wizard.errors import UserError
from wizard.estimate.batching import ROWS_PER_UPDATE, UPDATE_TOKENS
from wizard.init import answers as A
from wizard.init import questions as Qs
from wizard.init.context import Context


class CancelledAfterWrite(Exception):
    """Ctrl-C at "Start training now?": the spec is already written, so "nothing written" would be wrong."""


FLOW_OWNED = ("overwrite", "out_file", "start")  # asked around the summary, not in the question loop
PROMPT_KW = {"validate_while_typing": False}     # validators may read a file or ask a hub: on Enter only


def fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


class Flow:
    def __init__(self, ctx: Context, console: Console, *, interactive: bool, use_defaults: bool,
                 answers_file: str | None = None):
        self.ctx, self.console = ctx, console
        self.interactive, self.use_defaults = interactive, use_defaults
        self.source = answers_file or "answers file"
        self.preset = dict(ctx.preset)
        self.used: set[str] = set()
        self.step = 0

    # ------------------------------------------------------------------ the question loop
    def ask_questions(self) -> dict:
        order = [q for q in Qs.QUESTIONS if q.id not in FLOW_OWNED]
        index = {q.id: n for n, q in enumerate(order)}
        a: dict = {}
        i = 0
        while i < len(order):
            q = order[i]
            mode = self._mode(q, a)
            if mode == "skip":
                i += 1
                continue
            if q.id == "use_recommended":
                self._header(q.step)
                self.recommended_panel(a)
            value = self._answer(q, a, mode)
            a[q.id] = value
            self._after(q, a)
            if q.back_to and value is False:
                if not self.interactive:
                    raise UserError(f"{self.source}: {q.id}: answered no, and there is no one to ask for "
                                    f"another {q.back_to}", hint=f"change {q.back_to} in the answers file")
                for later in order[index[q.back_to]:i + 1]:
                    a.pop(later.id, None)
                    self.preset.pop(later.id, None)  # ask the person this time, not the file again
                i = index[q.back_to]
                continue
            i += 1
        for unused in sorted(set(self.preset) - self.used - set(FLOW_OWNED)):
            self.console.print(f"[yellow]note:[/] {self.source}: '{unused}' not used (it does not apply "
                               "to the answers given above)")
        return a

    def _mode(self, q: Qs.Question, a: dict) -> str:
        if not q.when(a, self.ctx):
            return "skip"
        if q.tuning:
            open_ = a.get("use_recommended") is False and (not q.advanced or a.get("advanced") is True)
            return "ask" if open_ else "fill"
        return "ask"

    def _answer(self, q: Qs.Question, a: dict, mode: str) -> Any:
        if q.id in self.preset:
            self.used.add(q.id)
            value = self._from_file(q, self.preset[q.id], a)
            self._record(q, value, "from " + Path(self.source).name)
            return value
        if mode == "fill":
            return Qs.default(q, a, self.ctx)
        if self.use_defaults or not self.interactive:
            if not self.use_defaults:
                raise UserError(f"{self.source} has no answer for '{q.id}' ({q.prompt}), and stdin is not a "
                                "terminal to ask", hint=f"add `{q.id}: ...` to it, or pass --defaults to take "
                                "the recommended answer for everything it leaves out")
            value = Qs.default(q, a, self.ctx)
            err = A.check(q, value, a, self.ctx)
            if err:
                raise UserError(f"--defaults: '{q.id}' ({q.prompt}) has no usable default: {err}",
                                hint=f"answer it in an answers file (`{q.id}: ...`) and pass --answers FILE")
            self._record(q, value, "recommended" if q.step == 6 else "default")
            return value
        self._header(q.step)
        return self.prompt(q, a)

    def _from_file(self, q: Qs.Question, raw: Any, a: dict) -> Any:
        try:
            value = A.coerce(q, raw, a, self.ctx)
        except ValueError as exc:
            implied = q.other(raw, self.ctx) if q.other else None
            if implied is None:
                raise UserError(f"{self.source}: {q.id}: {exc} (got {raw!r})") from None
            # `model: Qwen/Qwen2-7B` stands for choosing "other" and typing the id.
            self.preset.update({k: v for k, v in implied.items() if k != q.id})
            value = implied[q.id]
        err = A.check(q, value, a, self.ctx)
        if err:
            raise UserError(f"{self.source}: {q.id}: {err} (got {raw!r})")
        return value

    def _record(self, q: Qs.Question, value: Any, how: str) -> None:
        self._header(q.step)
        self.console.print(f"  [green]✓[/] {q.prompt} [bold]{fmt(value) or '(empty)'}[/] [dim]({how})[/]")

    def _header(self, step: int) -> None:
        if step != self.step:
            self.step = step
            self.console.print()
            self.console.rule(f"[bold]{step} · {Qs.STEPS.get(step, '')}", align="left", style="cyan")

    def _after(self, q: Qs.Question, a: dict) -> None:
        if q.id == "hub" and a[q.id] == "demo":
            self._header(3)
            self.console.print(f"  [green]✓[/] Model [bold]{self.ctx.demo_alias()}[/] [dim](bundled: no download)[/]")
        elif q.id == "hf_endpoint" and a[q.id]:
            os.environ["HF_ENDPOINT"] = a[q.id]  # the hub check below and "start now" use the mirror
            ok = self.ctx.probe_endpoint(a[q.id])
            self.console.print(f"  [dim]{a[q.id]} answers[/]" if ok else
                               f"  [yellow]{a[q.id]} does not answer now; ids can't be checked[/]")
        elif q.id == "model_id":
            hub = Qs.HUB_TITLES.get(a.get("hub"), a.get("hub"))
            found = self.ctx.hub_has_model(a.get("hub", ""), a[q.id])
            self.console.print(f"  [dim]{hub}: found {a[q.id]}[/]" if found else
                               f"  [yellow]{hub} is not answering: '{a[q.id]}' couldn't be checked; the run "
                               "will say if it does not exist[/]")
        elif q.id == "dataset_path":
            self.dataset_panel(a)

    # ------------------------------------------------------------------ one prompt
    def prompt(self, q: Qs.Question, a: dict) -> Any:
        import questionary

        dflt = Qs.default(q, a, self.ctx)
        self.console.print(f"  [dim]{Qs.help_text(q)}[/]")
        if q.kind == "select":
            opts = Qs.options(q, a, self.ctx)
            choices, group = [], None
            for o in opts:
                if o.group and o.group != group:
                    choices.append(questionary.Separator(f"── {o.group}"))
                    group = o.group
                choices.append(questionary.Choice(o.title, value=o.value))
            known = dflt in [o.value for o in opts]
            # A long list (the catalog) filters as you type; j/k then type letters instead of moving.
            long_list = len(opts) > 12
            return questionary.select(q.prompt, choices=choices, default=dflt if known else None,
                                      use_search_filter=long_list, use_jk_keys=not long_list,
                                      instruction=f"(↑/↓,{' type to filter,' if long_list else ''} Enter)",
                                      ).unsafe_ask()
        if q.kind == "confirm":
            return bool(questionary.confirm(q.prompt, default=bool(dflt)).unsafe_ask())

        def validate(text: str):
            try:
                value = A.coerce(q, text, a, self.ctx)
            except ValueError as exc:
                return str(exc)
            return A.check(q, value, a, self.ctx) or True

        if q.kind == "path":
            raw = questionary.path(q.prompt, default=fmt(dflt), validate=validate,
                                   only_directories=q.id == "output_dir", **PROMPT_KW).unsafe_ask()
        else:
            raw = questionary.text(q.prompt, default=fmt(dflt), validate=validate, **PROMPT_KW).unsafe_ask()
        return A.coerce(q, raw, a, self.ctx)

    def confirm(self, qid: str, prompt: str, default: bool) -> bool:
        """A flow-owned yes/no (overwrite, start): the answers file, else a person, else an error."""
        q = Qs.BY_ID[qid]
        if qid in self.preset:
            self.used.add(qid)
            return self._from_file(q, self.preset[qid], {})
        import questionary

        self.console.print(f"  [dim]{Qs.help_text(q)}[/]")
        return bool(questionary.confirm(prompt, default=default).unsafe_ask())

    # ------------------------------------------------------------------ panels
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
        intro = Text("Answer a few questions; get a run spec you can rerun; start training.\n"
                     "Enter takes the suggested answer. Ctrl-C quits without writing anything.\n")
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
        line = f"by tokens: ~{tokens:,} tokens per pass{' (auto)' if r['batch_tokens'] == 'auto' else ''}"
        mean_tokens = self.mean_row_tokens(a)
        if mean_tokens:
            line += f", ~{tokens / mean_tokens:.0f} rows of this dataset"
        return line + f"; {accum} per update (~{tokens * accum:,} tokens); whole rows, no padding"

    def mean_row_tokens(self, a: dict) -> float | None:
        """Tokens per row of the chosen local dataset, at ~4 characters a token (the tokenizer is not loaded)."""
        if a.get("dataset") != "local" or not a.get("dataset_path"):
            return None
        try:
            chars = self.ctx.preview(str(Path(a["dataset_path"]).expanduser()), Qs.task_method(a)[0]).mean_chars
        except Exception:  # noqa: BLE001 - no preview, no row count: the token figures stand alone
            return None
        return chars / 4 + 20 if chars else None  # + the chat template's own tokens

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

    def summary(self, spec, spec_file: str, endpoint: str) -> None:
        from wizard.spec import yaml_writer as spec_yaml

        self._header(8)
        t = Table(title="The run spec", title_justify="left", show_header=False, box=None, padding=(0, 2))
        t.add_column(style="bold")
        t.add_column(overflow="fold")
        for section, value in spec_yaml.relevant(spec).items():
            if section == "version":
                continue
            if isinstance(value, dict):
                value = " · ".join(f"{k} {v}" for k, v in _flatten(value))
            t.add_row(section, fmt(value))
        self.console.print(t)
        self.estimate_panel(spec)
        lines = Text()
        lines.append("Spec file:  ", style="bold")
        lines.append(f"{spec_file}\n")
        lines.append("Rerun it:   ", style="bold")
        if endpoint:
            lines.append(f"export HF_ENDPOINT={shlex.quote(endpoint)}\n            ")
        lines.append(f"tune-wizard run {shlex.quote(spec_file)}")
        self.console.print(Panel(lines, expand=False, border_style="cyan"))

    def estimate_panel(self, spec) -> None:
        avail, where = self.ctx.memory()
        try:
            from wizard.estimate import PART_LABELS, estimate_for_spec, verdict

            b = estimate_for_spec(spec, self.ctx.hardware)
            fits, advice = verdict(b, avail) if avail else (None, [])
        except Exception as exc:  # noqa: BLE001 - the estimate is advice; the wizard goes on without it
            self.console.print(f"  [yellow]no memory estimate ({type(exc).__name__}: {exc})[/]")
            return
        t = Table(show_header=True, box=None, padding=(0, 2))
        t.add_column("part")
        t.add_column("GiB", justify="right")
        for part, gb in dict(b.parts).items():
            t.add_row(PART_LABELS.get(part, str(part)), f"{float(gb):.2f}")
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


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            yield from _flatten(v, key)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            yield key, ", ".join(str(s.get("path", s)) + (f"#{s['sample']}" if s.get("sample") else "") for s in v)
        else:
            yield key, fmt(v)


# ---------------------------------------------------------------- the whole wizard

def free_name(path: Path) -> Path:
    n = 2
    while True:
        cand = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not cand.exists():
            return cand
        n += 1


def shown(path: Path) -> str:
    s = str(path)
    return s if path.is_absolute() or s.startswith(".") else f"./{s}"


def choose_file(flow: Flow, path: Path) -> Path:
    """The spec file to write: an existing file is overwritten only when someone said so."""
    import questionary

    while path.exists():
        if path.is_dir():
            raise UserError(f"{path} is a folder", hint="pass --out FILE.yaml")
        if "overwrite" not in flow.preset and not flow.interactive:
            how = "--defaults" if flow.use_defaults else flow.source
            raise UserError(f"{path} exists; {how} without a terminal never overwrites it",
                            hint=f"pass --out {shown(free_name(path))} (or another new file), or add "
                                 "`overwrite: true` to an answers file")
        flow._header(8)
        if flow.confirm("overwrite", f"{shown(path)} exists. Overwrite it?", False):
            flow.preset.pop("overwrite", None)
            return path
        flow.preset.pop("overwrite", None)
        if "out_file" in flow.preset:
            flow.used.add("out_file")
            path = Path(str(flow.preset.pop("out_file"))).expanduser()
            continue
        if not flow.interactive:
            raise UserError(f"{path} exists and the answers say not to overwrite it",
                            hint="add `out_file: NEW.yaml` to the answers file, or pass --out")
        flow.console.print(f"  [dim]{Qs.help_text(Qs.BY_ID['out_file'])}[/]")
        raw = questionary.path("Write the spec to", default=shown(free_name(path)), **PROMPT_KW,
                               validate=lambda t: True if t.strip() and not Path(t).expanduser().is_dir()
                               else "a file name, e.g. my-run.yaml").unsafe_ask()
        path = Path(raw.strip()).expanduser()
    return path


def run_wizard(ctx: Context, console: Console, *, interactive: bool, use_defaults: bool,
               answers_file: str | None = None) -> tuple[Path, bool]:
    """Ask, summarise, write the spec. Returns (spec file, start training now?).

    KeyboardInterrupt before the write leaves nothing on disk; after it, CancelledAfterWrite says the file
    is there.
    """
    from wizard.spec import from_dict
    from wizard.spec import yaml_writer as spec_yaml

    flow = Flow(ctx, console, interactive=interactive, use_defaults=use_defaults, answers_file=answers_file)
    flow.welcome()
    a = flow.ask_questions()
    # Default file: ./<name>.yaml, beside where the wizard was started, so `tune-wizard run` finds it there.
    path = ctx.out or Path(f"{a['name']}.yaml")
    endpoint = a.get("hf_endpoint", "")
    spec = from_dict(A.build_spec_dict(a, ctx, path), source="wizard answers")
    flow.summary(spec, shown(path), endpoint)
    final = choose_file(flow, path)
    if final != path:  # dataset paths are written relative to the spec's folder
        spec = from_dict(A.build_spec_dict(a, ctx, final), source="wizard answers")
    mirror = f"\nWith the Hugging Face mirror: export HF_ENDPOINT={shlex.quote(endpoint)}" if endpoint else ""
    header = (f"tune-wizard run spec, written by `tune-wizard init`; each field says what it does.\n"
              f"Run it:   tune-wizard run {shlex.quote(shown(final))}\n"
              f"Check it: tune-wizard validate {shlex.quote(shown(final))}{mirror}\n")
    spec_yaml.write(spec, final, header)
    console.print(f"\n[green]✓ wrote {shown(final)}[/]")
    if ctx.no_start:
        console.print(f"Start it with: [bold]tune-wizard run {shlex.quote(shown(final))}[/]")
        return final, False
    try:
        flow._header(9)
        if "start" in flow.preset:
            start = flow.confirm("start", "Start training now?", True)
        elif use_defaults or not interactive:
            start = True
        else:
            start = flow.confirm("start", "Start training now?", True)
    except KeyboardInterrupt:
        raise CancelledAfterWrite(f"cancelled; {shown(final)} is written: start it with "
                                  f"`tune-wizard run {shlex.quote(shown(final))}`") from None
    if not start:
        console.print(f"Start it later with: [bold]tune-wizard run {shlex.quote(shown(final))}[/]")
    return final, bool(start)
