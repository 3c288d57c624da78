"""tune-wizard export RUN_DIR --merge | --gguf TYPE | --awq | --gptq: a model folder, a GGUF file, a 4-bit folder.

--merge folds the adapter into its base (loaded in 16/32-bit, also for QLoRA runs) and saves a folder any
transformers-based stack loads without peft. --gguf writes one file for llama.cpp, Ollama and LM Studio
(f16, q8_0, or q4_0), from a run (merged first) or from any llama/qwen2 model. --awq / --gptq quantize the
merged model to 4-bit W4A16 (compressed-tensors) for vLLM, SGLang and TGI (wizard/export/quantize.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wizard.export.formats import format_lines
from wizard.hardware import PRECISIONS


def add_arguments(p) -> None:
    from wizard.export.quantize import DEFAULT_CALIBRATION_ROWS, DEFAULT_GROUP_SIZE, GROUP_SIZES

    p.add_argument("ref", metavar="RUN_DIR|MODEL",
                   help="a run folder (runs/<name>-<time>); --gguf, --awq and --gptq also take a model")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--merge", action="store_true", help="merged model folder (default out: RUN_DIR/merged)")
    what.add_argument("--gguf", metavar="TYPE", choices=["f16", "q8_0", "q4_0"],
                      help="GGUF file of type f16, q8_0 or q4_0 (default out: RUN_DIR/<name>-<TYPE>.gguf)")
    what.add_argument("--awq", action="store_true",
                      help="4-bit W4A16 folder, AWQ (activation-aware scales; default out: RUN_DIR/awq-w4a16)")
    what.add_argument("--gptq", action="store_true",
                      help="4-bit W4A16 folder, GPTQ (error-correcting rounding; default out: RUN_DIR/gptq-w4a16)")
    p.add_argument("--out", type=Path, help="output folder (--merge, --awq, --gptq) or file (--gguf)")
    p.add_argument("--dtype", choices=["auto", *PRECISIONS], default="auto",
                   help="--merge: precision of the saved weights (default: the base model's own)")
    q = p.add_argument_group("--awq / --gptq")
    q.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE, choices=GROUP_SIZES,
                   help=f"input columns sharing one 16-bit scale (default {DEFAULT_GROUP_SIZE}); it must divide "
                        "every layer's input size (the export names one that does)")
    q.add_argument("--calibration-rows", type=int, default=DEFAULT_CALIBRATION_ROWS, metavar="N",
                   help=f"rows to calibrate on (default {DEFAULT_CALIBRATION_ROWS}), from the run's training data "
                        "rendered with its chat template")
    q.add_argument("--calibration-data", metavar="FILE", action="append",
                   help="calibrate on this dataset file instead (any format `data.train` takes; repeatable); "
                        "needed for a model that is not a run")
    q.add_argument("--allow-cpu", action="store_true",
                   help="quantize a large model without a GPU anyway (the refusal says how long it would take)")
    p.add_argument("--force", action="store_true", help="replace an earlier export at --out")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "formats, and when to use which:\n" + "\n".join(f"  {line}" for line in format_lines())


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args) -> int:
    from transformers.utils import logging as hf_logging

    from wizard.errors import UserError

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    quant = "awq" if args.awq else "gptq" if args.gptq else None
    if args.dtype != "auto" and not args.merge:
        raise UserError(f"--dtype applies to --merge; {'a GGUF' if args.gguf else 'a 4-bit folder'}'s precision "
                        "is its format")
    if not quant and (args.calibration_data or args.allow_cpu):
        raise UserError("--calibration-data and --allow-cpu apply to --awq and --gptq")
    if args.merge:
        from wizard.export.merge import merge_run

        out = merge_run(args.ref, args.out, args.dtype, args.force, log=_log)
        print(out)
        print(f"use it: tune-wizard chat {out}   |   tune-wizard serve {out}", file=sys.stderr)
        return 0
    if quant:
        from wizard.export.quantize import export_quantized

        out = export_quantized(args.ref, args.out, quant, args.group_size, args.calibration_rows,
                               args.calibration_data, args.force, args.allow_cpu, log=_log)
        print(out)
        print(f"use it: vllm serve {out}   |   tune-wizard serve {out}   (more in {out / 'README.md'})",
              file=sys.stderr)
        return 0
    from wizard.export.gguf_export import export_gguf

    out = export_gguf(args.ref, args.gguf, args.out, args.force, log=_log)
    print(out)
    print(f"use it: llama-cli -m {out} -cnv   |   Ollama: a Modelfile with `FROM {out.resolve()}`",
          file=sys.stderr)
    return 0
