"""The ways out of a run, one line each on when to use which: `export --help` and the wizard's closing screen
both print this list."""
from __future__ import annotations

FORMATS = (
    ("--merge", "a 16-bit model folder: further training, or any transformers-based tool"),
    ("--gguf TYPE", "one GGUF file: llama.cpp, Ollama, LM Studio (laptops, CPUs, Apple silicon)"),
    ("--awq / --gptq", "a 4-bit W4A16 folder: vLLM, SGLang, TGI on GPUs (needs tune-wizard[quant])"),
)


def format_lines(run_dir: str = "RUN_DIR") -> list[str]:
    return [f"tune-wizard export {run_dir} {flag:<15} {use}" for flag, use in FORMATS]
