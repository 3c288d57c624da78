"""The wizard's flow: the questions of wizard.init.questions in order, Rich panels between them, a spec at the end.

One loop serves the three ways in: a person at a terminal, `--answers FILE` and `--defaults`. For each
question an answers-file value wins, then `--defaults` (or a question the recommended settings cover)
takes the default, and only then is the person asked (Esc goes back one). Nothing is written before the
review's Write (wizard.init.review), so Ctrl-C or Cancel anywhere before it leaves no file behind.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console

from wizard import hubs
from wizard.catalog import lookup
from wizard.errors import UserError
from wizard.init import answers as A
from wizard.init import questions as Qs
from wizard.init.context import Context
from wizard.init.keys import BACK
from wizard.init.panels import Panels, fmt, rerun_command, run_command, shown


class CancelledAfterWrite(Exception):
    """Ctrl-C at "Start training now?": the spec is already written, so "nothing written" would be wrong."""


FLOW_OWNED = ("overwrite", "out_file", "start")  # asked around the summary, not in the question loop
PROMPT_KW = {"validate_while_typing": False}     # validators may read a file or ask a hub: on Enter only
# Path prompts complete on Tab (their help says so), not while typing: a completion menu that may open keeps 8
# rows free below the prompt, which put a refused answer's message that far below it.
PATH_KW = {**PROMPT_KW, "complete_while_typing": False}


class Flow(Panels):
    def __init__(self, ctx: Context, console: Console, *, interactive: bool, use_defaults: bool,
                 answers_file: str | None = None):
        self.ctx, self.console = ctx, console
        self.interactive, self.use_defaults = interactive, use_defaults
        self.source = answers_file or "answers file"
        self.preset = dict(ctx.preset)
        self.used: set[str] = set()
        self.step = 0
        self.filled: set[str] = set()  # answers the recommended settings gave (not a person, not the file)
        self.implied: dict = {}        # answers that a typed id stands for (`model` "other" + its `model_id`)
        # Answers offered again as the defaults: a previous run's (its answers file), the answer before a step
        # back, the section's answers before an edit at the review.
        self.prev: dict = dict(ctx.previous)
        self.noted: set[str] = set()
        self.inferred: dict = {}       # question id -> the answers-file key its answer was read from
        self.problems: list[str] = []  # without a terminal: every bad answer of the file, reported at once
        self.hints: list[str] = []
        self.standins: set[str] = set()  # questions whose bad answer was replaced by its default, to go on
        self.history: list[str] = []     # the questions a person answered, in order: the way back (Esc)
        self.can_back = False            # whether the question being asked has one before it to go back to
        self.kept: set[str] = set()      # warnings (wizard.spec.warnings) the person chose to keep
        self.force_ask: set[str] = set() # questions a person asked to change, asked even among the recommended
        self._infer_hub()

    def _infer_hub(self) -> None:
        """An answers file that names the model but not where it comes from: the hub its model answer implies
        (a folder: local; the bundled model: demo; a catalog alias or owner/name: Hugging Face, or ModelScope
        with USE_MODELSCOPE_HUB=1 where the model is there). Without it the model answer would not be asked
        for, and the demo model trained instead."""
        if "hub" in self.preset:
            return
        key = next((k for k in ("model_path", "model_id", "model") if k in self.preset), None)
        if key is None:
            if "hf_endpoint" in self.preset:
                self.preset["hub"], self.inferred["hub"] = "huggingface", "hf_endpoint"
            return
        raw = str(self.preset[key]).strip()
        entry = lookup(raw)
        if key == "model_path":
            hub = "local"
        elif entry is not None and entry.bundled and raw == self.ctx.demo_alias():
            hub = "demo"
            self.used.add(key)  # what `hub: demo` means: nothing more to ask
        elif entry is not None or hubs.is_repo_id(raw):
            hub = hubs.which("auto")
            if entry is not None and not getattr(entry, "ms" if hub == "modelscope" else "hf"):
                hub = "huggingface" if hub == "modelscope" else "modelscope"
        elif raw and Path(raw).expanduser().exists():
            hub = "local"
            self.preset["model_path"] = self.preset.pop(key)  # `model: ./my-model` names a folder
            key = "model_path"
        else:
            return  # the model answer is checked, and refused with its key, where it is asked
        self.preset["hub"], self.inferred["hub"] = hub, key

    def _problem(self, exc: UserError) -> None:
        """A bad answer: at a terminal it stops here; from a file without one, it is listed with the others."""
        if self.interactive:
            raise exc
        self.problems += exc.problems
        if exc.hint and exc.hint not in self.hints:
            self.hints.append(exc.hint)

    # ------------------------------------------------------------------ the question loop
    def ask_questions(self, a: dict | None = None) -> dict:
        """Walk the questions. With `a` (answers so far, after a change or an edit at the summary), an answer
        already given stays; an answer the recommended settings filled in is filled in again (it may follow
        the change), and a question that no longer applies is dropped."""
        order = [q for q in Qs.QUESTIONS if q.id not in FLOW_OWNED]
        index = {q.id: n for n, q in enumerate(order)}
        a = {} if a is None else a
        i = 0
        while i < len(order):
            q = order[i]
            mode = self._mode(q, a)
            if mode == "skip":
                a.pop(q.id, None)
                self.filled.discard(q.id)
                i += 1
                continue
            if q.id in a and q.id not in self.filled:
                i += 1
                continue
            if q.id == "use_recommended":
                self._header(q.step)
                self.recommended_panel(a)
            self.can_back = any(index[h] < i for h in self.history)
            value = self._answer(q, a, mode)
            if value is BACK:
                i = self._step_back(order, index, i, a)
                continue
            a[q.id] = value
            if q.id not in self.standins:  # a bad answer's stand-in gets no panel, no hub check
                self._after(q, a)
            if q.back_to and value is False:
                if not self.interactive:
                    self._problem(UserError(f"{self.source}: {q.id}: answered no, and there is no one to ask for "
                                            f"another {q.back_to}", hint=f"change {q.back_to} in the answers file"))
                    i += 1
                    continue
                for later in order[index[q.back_to]:i + 1]:
                    a.pop(later.id, None)
                    self.preset.pop(later.id, None)  # ask the person this time, not the file again
                i = index[q.back_to]
                continue
            i += 1
        unused = sorted(set(self.preset) - self.used - set(FLOW_OWNED) - self.noted)
        self.noted.update(unused)
        bad_answers = bool(self.problems)
        for key in unused:
            why = f"it is asked only with {Qs.ASKED_WHEN[key]}" if key in Qs.ASKED_WHEN else \
                "it does not apply to the answers above"
            if self.interactive:
                self.console.print(f"[yellow]note:[/] {self.source}: '{key}' not used ({why})")
            elif not bad_answers:  # after a bad answer, its stand-in may be why: that answer comes first
                self.problems.append(f"{self.source}: '{key}' ({Qs.BY_ID[key].prompt}) is not asked with these "
                                     f"answers: {why}")
                hint = "remove the key, or change the answer it depends on"
                if hint not in self.hints:
                    self.hints.append(hint)
        if self.problems:
            raise UserError(self.problems, hint="\n".join(self.hints))
        return a

    def _step_back(self, order: list, index: dict, i: int, a: dict) -> int:
        """Esc at question i: the index of the last question a person answered before it, whose answer is
        offered again; the answers from there on are asked (or filled in) again."""
        while self.history and index[self.history[-1]] >= i:  # answered later, before an edit at the review
            self.history.pop()
        j = index[self.history.pop()]
        back = order[j].id
        if back in a:
            self.prev[back] = a[back]
        for later in order[j:i + 1]:
            a.pop(later.id, None)
            self.filled.discard(later.id)
        return j

    def _mode(self, q: Qs.Question, a: dict) -> str:
        if not q.when(a, self.ctx):
            return "skip"
        if q.id in self.force_ask:
            return "ask"
        if q.tuning:
            open_ = a.get("use_recommended") is False and (not q.advanced or a.get("advanced") is True)
            return "ask" if open_ else "fill"
        return "ask"

    def _answer(self, q: Qs.Question, a: dict, mode: str) -> Any:
        if q.id in self.preset:
            self.used.add(q.id)
            try:
                value = self._from_file(q, self.preset[q.id], a)
            except UserError as exc:
                self._problem(exc)
                self.standins.add(q.id)
                return Qs.default(q, a, self.ctx)  # a stand-in, to find the file's other problems
            key = self.inferred.get(q.id)
            self._record(q, value, f"from {key} in {Path(self.source).name}" if key else
                         "from " + Path(self.source).name)
            return value
        if mode == "fill":
            self.filled.add(q.id)
            return Qs.default(q, a, self.ctx)
        self.filled.discard(q.id)
        if q.id in self.implied:  # typed in the list above it: the id itself, checked like a typed answer
            value = self.implied.pop(q.id)
            err = A.check(q, value, a, self.ctx)
            if err is None:
                self._record(q, value, "typed in the list")
                return value
            self._header(q.step)
            self.console.print(f"  [yellow]{err}[/]")
            return self.prompt(q, a, default=value, can_back=self.can_back)
        if self.use_defaults or not self.interactive:
            if not self.use_defaults and not q.may_skip:
                self._problem(UserError(f"{self.source} has no answer for '{q.id}' ({q.prompt}), and stdin is "
                                        "not a terminal to ask", hint="add each missing answer to it, or pass "
                                        "--defaults to take the recommended answer for everything it leaves out"))
                self.standins.add(q.id)
                return Qs.default(q, a, self.ctx)
            value = Qs.default(q, a, self.ctx)
            err = A.check(q, value, a, self.ctx)
            if err:
                self._problem(UserError(f"--defaults: '{q.id}' ({q.prompt}) has no usable default: {err}",
                                        hint=f"answer it in an answers file (`{q.id}: ...`) and pass --answers FILE"))
                self.standins.add(q.id)
                return value
            self._record(q, value, "recommended" if q.step == 6 else "default")
            return value
        self._header(q.step)
        return self.prompt(q, a, can_back=self.can_back)

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
            steps = sorted(Qs.STEPS)
            number = f"{steps.index(step) + 1} of {len(steps)}" if step in steps else str(step)
            self.console.rule(f"[bold]{number} · {Qs.STEPS.get(step, '')}", align="left", style="cyan")

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
        elif q.id == "download_to":
            self.download_now(a)
        elif q.id == "dataset_path":
            self.dataset_panel(a)
        elif q.id == "dataset_hub" and a.get("hub") in hubs.TITLES:
            self.console.print(f"  [dim]downloaded from {hubs.TITLES[a['hub']]} when the run starts (the spec "
                               f"says so: data.train hub {a['hub']})[/]")

    def download_now(self, a: dict) -> None:
        """The model's files (those training reads) into the folder just answered. A download that fails is
        said, and the spec keeps the hub id: the run downloads it when it starts."""
        from wizard.model_source import MODEL_FILES, hub_repo

        try:
            repo, hub = hub_repo(Qs.model_id(a, self.ctx), a["hub"])
            with self.console.status(f"Downloading {repo} from {hubs.TITLES[hub]}…", spinner="dots"):
                folder = Path(hubs.download(hub, repo, to=a["download_to"], include=list(MODEL_FILES)))
        except Exception as exc:  # noqa: BLE001 - any failure: the run can still download it later
            problem = "; ".join(getattr(exc, "problems", None) or [f"{type(exc).__name__}: {exc}"])
            self.console.print(f"  [yellow]not downloaded ({problem}); the run will download it when it "
                               "starts[/]")
            a["download"] = False
            a.pop("download_to", None)
            return
        files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        self.console.print(f"  [green]✓[/] saved in [bold]{shown(Path(a['download_to']))}[/]: {', '.join(files)}")
        self.console.print("  [dim]the spec trains from this folder (model.hub: local)[/]")

    # ------------------------------------------------------------------ one prompt
    def prompt(self, q: Qs.Question, a: dict, default: Any = None, can_back: bool = False) -> Any:
        """Ask a person; returns the answer, or BACK (Esc, or the list's "← back" line) when `can_back`."""
        import questionary

        from wizard.init.keys import BACK, BACK_TITLE, HINT, backable

        dflt = default if default is not None else self.prev.get(q.id, Qs.default(q, a, self.ctx))
        self.console.print(f"  [dim]{Qs.help_text(q)}[/]")
        back = f"; {HINT}" if can_back else ""

        def ask(question) -> Any:
            value = backable(question, enabled=can_back).unsafe_ask()
            if value is not BACK:
                self.history.append(q.id)
            return value

        if q.kind == "select":
            opts = Qs.options(q, a, self.ctx)
            choices, group = [], None
            for o in opts:
                if o.group and o.group != group:
                    choices.append(questionary.Separator(f"── {o.group}"))  # a heading: never an answer
                    group = o.group
                choices.append(questionary.Choice(o.title, value=o.value))
            if can_back:
                choices.append(questionary.Choice(BACK_TITLE, value=BACK))
            known = dflt in [o.value for o in opts]
            if not known and q.id in self.prev:  # a previous answer this list no longer offers
                dflt = Qs.default(q, a, self.ctx)
                known = dflt in [o.value for o in opts]
            if len(opts) <= 12:
                return ask(questionary.select(q.prompt, choices=choices, default=dflt if known else None,
                                              use_jk_keys=True, instruction=f"(↑/↓, Enter{back})"))
            # A long list (the catalog) filters as you type; a filter that matches nothing may be an id.
            from wizard.init.picker import Typed, filter_select

            value = ask(filter_select(q.prompt, choices, dflt if known else None, typed=self._typed_title(q),
                                      instruction=f"(↑/↓, type to filter, Enter{back})"))
            if not isinstance(value, Typed):
                return value
            implied = q.other(value.text, self.ctx) if q.other else None
            if not implied:  # the picker offers only what `other` takes; kept as a guard
                raise UserError(f"{q.id}: '{value.text}' is not one of the choices")
            self.implied.update({k: v for k, v in implied.items() if k != q.id})
            return implied[q.id]
        if q.kind == "confirm":
            yn = "Y/n" if dflt else "y/N"
            value = ask(questionary.confirm(q.prompt, default=bool(dflt), instruction=f"({yn}{back}) "))
            return value if value is BACK else bool(value)

        def validate(text: str):
            try:
                value = A.coerce(q, text, a, self.ctx)
            except ValueError as exc:
                return str(exc)
            return A.check(q, value, a, self.ctx) or True

        if q.kind == "path":  # questionary.path takes no instruction: the hint goes with the question
            raw = ask(questionary.path(q.prompt + (f" ({HINT})" if can_back else ""), default=fmt(dflt),
                                       validate=validate, only_directories=q.id == "output_dir", **PATH_KW))
        else:
            raw = ask(questionary.text(q.prompt, default=fmt(dflt), validate=validate,
                                       instruction=f"({HINT})" if can_back else None, **PROMPT_KW))
        return raw if raw is BACK else A.coerce(q, raw, a, self.ctx)

    def _typed_title(self, q: Qs.Question):
        """For a filter that matches no choice: the line that offers the text itself, where it can be an id."""
        def title(text: str) -> str | None:
            if q.other is None or not hubs.is_repo_id(text) or not q.other(text, self.ctx):
                return None
            return f"use '{text}' as a hub id"
        return title

    def confirm(self, qid: str, prompt: str, default: bool) -> bool:
        """A flow-owned yes/no (overwrite, start): the answers file, else a person, else an error."""
        q = Qs.BY_ID[qid]
        if qid in self.preset:
            self.used.add(qid)
            return self._from_file(q, self.preset[qid], {})
        import questionary

        self.console.print(f"  [dim]{Qs.help_text(q)}[/]")
        return bool(questionary.confirm(prompt, default=default).unsafe_ask())

    # ------------------------------------------------------------------ a spec the estimate says won't fit
    def apply_change(self, a: dict, changed: dict, change: str) -> None:
        """Take the estimate's change into the answers; a run name that was the default follows the method."""
        name_q = Qs.BY_ID["name"]
        old_name = Qs.default(name_q, a, self.ctx)
        for qid, value in changed.items():
            a[qid] = value
            self.filled.discard(qid)
            self.preset.pop(qid, None)
        self._header(6)
        self.console.print(f"  [green]✓[/] applied [bold]{change}[/]")
        if a.get("name") == old_name and "task" in changed:
            a["name"] = Qs.default(name_q, a, self.ctx)
            self.console.print(f"  [green]✓[/] {name_q.prompt} [bold]{a['name']}[/] [dim](follows the method)[/]")

    def ask_again(self, qid: str, a: dict) -> None:
        """One answer asked again (a person wants to change it), offering the value it had."""
        if qid in a:
            self.prev[qid] = a.pop(qid)
        self.preset.pop(qid, None)
        self.filled.discard(qid)
        self.force_ask.add(qid)

    def spec_warnings(self, spec, a: dict) -> list:
        """wizard.spec.warnings for the spec these answers make, with the facts this machine and the chosen
        dataset give."""
        from wizard.init.sanity import facts_for
        from wizard.spec.warnings import check

        cuda = bool(self.ctx.gpus) if self.ctx.hardware is not None else None
        facts = facts_for(spec, shape=self.ctx.shape(Qs.model_id(a, self.ctx)), cuda=cuda,
                          rows=Qs.dataset_rows(a, self.ctx)[0])
        return check(spec, facts)

    def edit_tuning(self, a: dict, change: str | None) -> None:
        """Back to the hyperparameters: each is asked again, offering the value it has now."""
        tuning = [q for q in Qs.QUESTIONS if q.tuning]
        self.prev = {q.id: a[q.id] for q in tuning if q.id in a}
        path = (change or "").partition(":")[0]
        qid = "task" if path == "method" else Qs.question_for(path) if path else None
        if qid and Qs.BY_ID[qid].advanced:
            self.prev["advanced"] = True  # the change the estimate names is among the advanced settings
        for q in tuning:
            a.pop(q.id, None)
            self.preset.pop(q.id, None)  # ask the person this time, not the file again
            self.filled.discard(q.id)
        a["use_recommended"] = False
        self.filled.discard("use_recommended")
        self.preset.pop("use_recommended", None)

# ---------------------------------------------------------------- the whole wizard

def free_name(path: Path) -> Path:
    n = 2
    while True:
        cand = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not cand.exists():
            return cand
        n += 1


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
        raw = questionary.path("Write the spec to", default=shown(free_name(path)), **PATH_KW,
                               validate=lambda t: True if t.strip() and not Path(t).expanduser().is_dir()
                               else "a file name, e.g. my-run.yaml").unsafe_ask()
        path = Path(raw.strip()).expanduser()
    return path


def run_wizard(ctx: Context, console: Console, *, interactive: bool, use_defaults: bool,
               answers_file: str | None = None) -> tuple[Path, bool]:
    """Ask, review, write the spec and its answers file. Returns (spec file, start training now?).

    KeyboardInterrupt before the write leaves nothing on disk, and so does Cancel at the review
    (review.Cancelled); after the write, CancelledAfterWrite says the file is there.
    """
    from wizard.init import review, sanity, saved
    from wizard.spec import from_dict
    from wizard.spec import yaml_writer as spec_yaml

    flow = Flow(ctx, console, interactive=interactive, use_defaults=use_defaults, answers_file=answers_file)
    flow.welcome()
    a = flow.ask_questions()
    while True:
        bad = A.model_problem(a, ctx)
        if bad:  # never a spec whose model.id is a heading, a stray word or a missing path
            raise UserError(f"{flow.source if bad[0] in flow.preset else 'the answers'}: {bad[0]}: {bad[1]}",
                            hint="a catalog alias, an owner/name hub id, or a folder holding the model")
        # Default file: ./<name>.yaml, beside where the wizard was started, so `tune-wizard run` finds it there.
        path = ctx.out or Path(f"{a['name']}.yaml")
        spec = from_dict(A.build_spec_dict(a, ctx, path), source="wizard answers")
        if sanity.ask_about(flow, flow.spec_warnings(spec, a), a):
            a = flow.ask_questions(a)
            continue
        fit = flow.summary(spec, shown(path), a)
        if not interactive or use_defaults:  # nobody to ask: a spec that does not fit is written with a warning
            break
        pick, changed = review.ask(flow, fit, a)
        if pick == "write":
            break
        if pick == "apply" and changed:
            flow.apply_change(a, changed, fit.change or "")
        elif pick == "edit:6":
            flow.edit_tuning(a, fit.change)
        else:
            review.edit_section(flow, a, int(pick.partition(":")[2]))
        a = flow.ask_questions(a)
    endpoint = a.get("hf_endpoint", "")
    final = choose_file(flow, path)
    overwritten = final.exists()
    if final != path:  # dataset paths are written relative to the spec's folder
        spec = from_dict(A.build_spec_dict(a, ctx, final), source="wizard answers")
    start_line = run_command(final, endpoint)
    header = (f"tune-wizard run spec, written by `tune-wizard init`; each field says what it does.\n"
              f"Run it:   {start_line}\n"
              f"Check it: tune-wizard validate {shlex.quote(shown(final))}\n")
    spec_yaml.write(spec, final, header)
    answers_path = saved.path_for(final)
    if answers_path.exists() and not overwritten:  # someone's file by that name, not this spec's: keep it
        answers_path = free_name(answers_path)
    saved.write(answers_path, saved.answers_to_save(a, flow.filled, FLOW_OWNED), shown(final),
                rerun_command(answers_path, final, a["name"]))
    console.print(f"\n[green]✓ wrote {shown(final)} and its answers, {shown(answers_path)}[/]")
    flow.done_panel(final, answers_path, endpoint, a["name"])
    if fit.fits is False:
        flow.fit_warning(fit, "--defaults" if use_defaults else "you said so" if interactive else
                         "--answers without a terminal")
    if ctx.no_start:
        console.print(f"Start it with: [bold]{start_line}[/]")
        return final, False
    try:
        flow._header(9)
        if "start" in flow.preset:
            start = flow.confirm("start", "Start training now?", True)
        elif use_defaults or not interactive:
            start = True
        else:  # a spec the estimate says won't fit, written anyway: Enter does not start it
            start = flow.confirm("start", "Start training now?", fit.fits is not False)
    except KeyboardInterrupt:
        raise CancelledAfterWrite(f"cancelled; {shown(final)} is written: start it with `{start_line}`") from None
    if not start:
        console.print(f"Start it later with: [bold]{start_line}[/]")
    return final, bool(start)
