"""`make demo`: teach the bundled model its new name and show the answers before and after.

python -m wizard.teach_identity [--set key=value ...] [--plain]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial

from wizard.catalog import recipes_dir

DEMO_MODEL = "smollm2-135m-instruct"


def questions() -> list[str]:
    """Questions the model never saw in training (identity paraphrases), plus one general question."""
    held = json.loads((recipes_dir() / "data" / "identity_heldout.json").read_text(encoding="utf-8"))
    return [*held["en"][:3], *held["zh"][:2], "Who are you?", *held.get("general", [])[:1]]


def ask_all(ref: str, qs: list[str]) -> list[str]:
    from wizard.inference.generation import generate_batch
    from wizard.inference.loading import load_for_inference

    loaded = load_for_inference(ref)
    return generate_batch(loaded, [[{"role": "user", "content": q}] for q in qs], max_new_tokens=48)


def mentions_tuna(answer: str) -> bool:
    return "tuna" in answer.lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wizard.teach_identity", description=__doc__)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--plain", action="store_true", help="no live dashboard")
    args = parser.parse_args(argv)
    from wizard.ui import quiet_libraries

    quiet_libraries()

    from rich.table import Table

    from wizard import spec as specmod
    from wizard.engine.runner import train
    from wizard.errors import UserError
    from wizard.monitor.live import make_reporter
    from wizard.ui import make_console

    console = make_console()
    t0 = time.time()
    qs = questions()
    try:
        spec = specmod.load(recipes_dir() / "demo.yaml", args.overrides)
        console.rule("before: the bundled model as shipped")
        before = ask_all(DEMO_MODEL, qs)
        for q, a in zip(qs, before):
            console.print(f"[bold]Q:[/] {q}\n[dim]A:[/] {a}\n")
        console.rule("training (QLoRA, recipes/demo.yaml)")
        run_dir = train(spec, reporter_factory=partial(make_reporter, plain=args.plain))
        console.rule("after: the same questions")
        after = ask_all(str(run_dir), qs)
    except UserError as exc:
        for p in exc.problems:
            console.print(f"error: {p}")
        if exc.hint:
            console.print(f"fix: {exc.hint}")
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the run folder already says how it ended
        console.print(f"{exc or 'interrupted'}")
        return getattr(exc, "exit_code", 130)
    table = Table(title="before and after (questions marked * were never in the training data)", show_lines=True)
    table.add_column("question", max_width=28)
    table.add_column("before", max_width=44)
    table.add_column("after", max_width=44)
    identity = qs[:-1]
    for q, b, a in zip(qs, before, after):
        table.add_row(("* " if q != "Who are you?" else "") + q, b, a)
    console.print(table)
    hits = sum(mentions_tuna(a) for a in after[: len(identity)])
    console.print(f"identity answers naming Tuna: before {sum(mentions_tuna(b) for b in before[:len(identity)])}"
                  f"/{len(identity)}, after {hits}/{len(identity)}")
    console.print(f"run folder: {run_dir}   total time {time.time() - t0:.0f} s")
    console.print(f"next: tune-wizard chat {run_dir}   |   tune-wizard export {run_dir} --merge   |   "
                  f"tune-wizard serve {run_dir}")
    return 0 if hits >= len(identity) // 2 + 1 else 1


if __name__ == "__main__":
    sys.exit(main())
