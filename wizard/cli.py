"""The `tune-wizard` command: parse, hand each verb to its module, map errors to exit codes.

Exit codes: 0 success, 1 failure during work, 2 bad input (with the problem and the fix), 130 interrupted.
Each verb lives in wizard/commands/<verb>.py with `add_arguments(parser)` and `run(args) -> int`, and is
imported only when used so `tune-wizard --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

VERBS = {
    "init": "the wizard: answer questions, get a run spec, start training",
    "run": "validate a spec and train",
    "validate": "check a spec and its datasets without training",
    "estimate": "memory estimate of a spec, broken down",
    "watch": "the live dashboard of a run, from another terminal",
    "chat": "talk to a trained run or a base model",
    "export": "merged weights, a GGUF file or a 4-bit folder (AWQ, GPTQ) from a run",
    "serve": "an OpenAI-compatible HTTP API over a run or a model",
    "download": "fetch a model once, for offline training or another machine",
    "recipes": "bundled recipes and catalog models",
    "doctor": "check this machine: torch, CUDA, bf16, bitsandbytes, NVML, disk, hubs",
}


def build_parser(verbs: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tune-wizard", description="Fine-tune an LLM on one modest GPU.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    from wizard import __version__

    parser.add_argument("--version", action="version", version=f"tune-wizard {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for verb, help_text in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        if verbs is None or verb in verbs:
            _module(verb).add_arguments(p)
    return parser


def _module(verb: str):
    return importlib.import_module(f"wizard.commands.{verb}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from wizard.ui import quiet_libraries

    quiet_libraries()
    # Only the chosen verb's module is imported; bare `tune-wizard` is the wizard.
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb is None and not any(a in ("-h", "--help", "--version") for a in argv):
        argv = ["init", *argv]
        verb = "init"
    parser = build_parser([verb] if verb in VERBS else list(VERBS))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage and the problem
        return 2 if exc.code not in (0, None) else 0
    from wizard.hubs import env_on

    debug = getattr(args, "debug", False) or env_on("TUNE_WIZARD_DEBUG")
    from wizard.errors import UserError

    try:
        return int(_module(args.verb).run(args) or 0)
    except UserError as exc:
        if debug:
            raise
        _print_problems(exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or a run stopped by a signal (130 SIGINT, 143 SIGTERM)
        if os.environ.get("RANK", "0") == "0":  # one line for a run on several processes: rank 0's
            print(f"\n{exc or 'interrupted'}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one readable line, exit 1
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}\n(run again with --debug for the traceback)", file=sys.stderr)
        return 1


def _print_problems(exc) -> None:
    n = len(exc.problems)
    head = "error:" if n == 1 else f"{n} problems:"
    print(head if n > 1 else "", end="\n" if n > 1 else "", file=sys.stderr)
    for p in exc.problems:
        print(f"  {p}" if n > 1 else f"error: {p}", file=sys.stderr)
    if exc.hint:
        print(f"fix: {exc.hint}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
