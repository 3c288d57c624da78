"""tune-wizard init [--out F] [--defaults] [--answers F] [--no-start]: the wizard."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wizard.errors import UserError


def add_arguments(p) -> None:
    from wizard.init.questions import QUESTIONS

    p.add_argument("--out", metavar="FILE", help="the spec file to write (default: ./<run name>.yaml)")
    p.add_argument("--defaults", action="store_true",
                   help="take every recommended answer without asking (with --answers: for what it leaves out)")
    p.add_argument("--answers", metavar="FILE",
                   help="YAML mapping of question id -> answer; only the questions it leaves out are asked")
    p.add_argument("--no-start", action="store_true", help="stop after writing the spec")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    ids = "\n".join(f"  {q.id:<24}{q.prompt}" + (f"  [{', '.join((q.spec, *q.also))}]" if q.spec else "")
                     for q in QUESTIONS)
    p.epilog = ("question ids for --answers (e.g. `hub: demo`, `task: sft-lora`, `dataset: data.jsonl`, "
                f"`lr: 1e-4`), with the spec field each one sets:\n{ids}\n\n"
                "`model: ID` without `hub:` sets the hub the id implies. A key whose question the other answers "
                "skip is an error, and without a terminal every bad answer is reported at once.")


def load_answers(path: str) -> dict:
    from wizard.init.answers import nearest_id
    from wizard.init.questions import BY_ID
    from wizard.spec import read_yaml

    try:
        raw = read_yaml(path)
    except UserError as exc:  # read_yaml's "no such file" hint is about specs
        if not Path(path).is_file():
            raise UserError(f"--answers {path}: no such file", hint="write a YAML mapping of question id -> "
                            "answer; `tune-wizard init --help` lists the ids") from None
        raise exc
    if not isinstance(raw, dict):
        raise UserError(f"--answers {path}: expected a mapping of question id -> answer, got "
                        f"{type(raw).__name__}", hint="e.g.\n  hub: demo\n  task: sft-qlora\n  lr: 1e-4")
    problems = []
    for key in raw:
        if str(key) not in BY_ID:
            near = nearest_id(str(key))
            problems.append(f"--answers {path}: '{key}' is not a question id"
                            + (f"; did you mean '{near}'?" if near else ""))
    if problems:
        raise UserError(problems, hint="`tune-wizard init --help` lists the question ids")
    # Values stay as written (`lr: 2e-4` is a string in YAML 1.1): each question reads its own type.
    return {str(k): v for k, v in raw.items()}


def run(args) -> int:
    interactive = sys.stdin.isatty()
    if not interactive and not (args.defaults or args.answers):
        raise UserError("stdin is not a terminal, so the wizard cannot ask its questions",
                        hint="pass --defaults to take every recommended answer, or --answers FILE (a YAML "
                             "mapping of question id -> answer; `tune-wizard init --help` lists the ids)")
    preset = load_answers(args.answers) if args.answers else {}
    from wizard.init import saved
    from wizard.init.context import Context
    from wizard.init.flow import CancelledAfterWrite, run_wizard
    from wizard.init.review import Cancelled
    from wizard.ui import make_console

    # A person rerunning the wizard where it wrote a spec before gets those answers as the defaults.
    previous = saved.latest(Path.cwd()) if interactive and not (args.answers or args.defaults) else None
    console = make_console()
    try:
        with console.status("Looking at this machine…", spinner="dots"):
            ctx = Context.probe(preset=preset, out=Path(args.out).expanduser() if args.out else None,
                                no_start=args.no_start, previous_file=previous,
                                previous=saved.read_previous(previous) if previous else {})
        path, start = run_wizard(ctx, console, interactive=interactive, use_defaults=args.defaults,
                                 answers_file=args.answers)
    except Cancelled as exc:  # the person's choice at the review: done, nothing written
        print(str(exc), file=sys.stderr)
        return 0
    except CancelledAfterWrite as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except (KeyboardInterrupt, EOFError):
        print("cancelled; nothing written", file=sys.stderr)
        return 130
    if not start:
        return 0
    # The same code as `tune-wizard run SPEC`: the wizard only wrote the file it reads.
    from wizard.engine.launch import start as start_run

    status = start_run(str(path), [])
    if status == 0:  # the closing screen: the ways out of the run (its folder is on the screen above), one line each
        from wizard.export.formats import format_lines

        print("\nexport it:\n" + "\n".join(f"  {line}" for line in format_lines()))
    return status
