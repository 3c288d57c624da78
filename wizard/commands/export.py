"""tune-wizard export RUN_DIR --merge | --gguf TYPE: a standalone model folder, or a GGUF file.

--merge folds the adapter into its base (loaded in 16/32-bit, also for QLoRA runs) and saves a folder any
transformers-based stack loads without peft. --gguf writes one file for llama.cpp, Ollama and LM Studio
(f16, q8_0, or q4_0), from a run (merged first) or from any llama/qwen2 model.
"""
from __future__ import annotations

import sys
from pathlib import Path

from wizard.hardware import PRECISIONS


def add_arguments(p) -> None:
    p.add_argument("ref", metavar="RUN_DIR|MODEL", help="a run folder (runs/<name>-<time>); --gguf also takes a model")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--merge", action="store_true", help="merged model folder (default out: RUN_DIR/merged)")
    what.add_argument("--gguf", metavar="TYPE", choices=["f16", "q8_0", "q4_0"],
                      help="GGUF file of type f16, q8_0 or q4_0 (default out: RUN_DIR/<name>-<TYPE>.gguf)")
    p.add_argument("--out", type=Path, help="output folder (--merge) or file (--gguf)")
    p.add_argument("--dtype", choices=["auto", *PRECISIONS], default="auto",
                   help="--merge: precision of the saved weights (default: the base model's own)")
    p.add_argument("--force", action="store_true", help="replace an earlier export at --out")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args) -> int:
    from transformers.utils import logging as hf_logging

    from wizard.errors import UserError

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.gguf and args.dtype != "auto":
        raise UserError("--dtype applies to --merge; a GGUF's precision is its TYPE (f16, q8_0, q4_0)")
    if args.merge:
        from wizard.export.merge import merge_run

        out = merge_run(args.ref, args.out, args.dtype, args.force, log=_log)
        print(out)
        print(f"use it: tune-wizard chat {out}   |   tune-wizard serve {out}", file=sys.stderr)
        return 0
    from wizard.export.gguf_export import export_gguf

    out = export_gguf(args.ref, args.gguf, args.out, args.force, log=_log)
    print(out)
    print(f"use it: llama-cli -m {out} -cnv   |   Ollama: a Modelfile with `FROM {out.resolve()}`",
          file=sys.stderr)
    return 0
