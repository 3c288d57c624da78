"""Export a run as a 4-bit W4A16 model folder (GPTQ or AWQ) that vLLM, SGLang and TGI serve.

The run's adapter is merged into its base in 16/32-bit (`merge.merged_model`, as `--merge` does), then
llm-compressor's `oneshot` quantizes every Linear but lm_head to 4-bit integers with one 16-bit scale per group
of input columns, calibrated on the run's own training rows rendered the way training saw them (the model's chat
template, `wizard.data.render.tokenize_sft`). The folder is written in the compressed-tensors format
(`quantization_config.quant_method: compressed-tensors`, int4 weights packed eight to an int32): vLLM and SGLang
read it natively, and transformers loads it where the `compressed-tensors` package is installed.

llm-compressor is the optional extra `[quant]`: it pins transformers to a narrow range (0.14.0.1:
transformers>=5.15,<=5.17), so it is imported here only, and only when asked for. It calibrates on the GPU
when there is one (one decoder layer at a time, so a model that trained as QLoRA quantizes even where it does not
fit the GPU in 16-bit); GPTQ runs on the CPU too, in fp32 (bf16 arithmetic is several times slower on CPUs), but
its AWQ needs CUDA (page-locked memory for the cached activations).
"""
from __future__ import annotations

import importlib
import json
import os
import random
import shutil
import sys
import time
import warnings
from pathlib import Path

from wizard import run_folder as rf
from wizard.errors import UserError
from wizard.export.merge import auto_dtype, check_out_dir, merged_model, remove_model_files

SCHEMES = ("gptq", "awq")
GROUP_SIZES = (32, 64, 128)  # what vLLM's Marlin W4A16 kernels accept (besides -1, per channel)
DEFAULT_GROUP_SIZE = 128
MIN_CALIBRATION_ROWS = 16
DEFAULT_CALIBRATION_ROWS = 128
MAX_CALIBRATION_LENGTH = 2048  # tokens per calibration row; longer rows are cut (GPTQ needs no more)
# Without a GPU a model over this size is refused unless --allow-cpu: it would take the better part of an hour.
CPU_PARAMS_LIMIT = 1.5e9
# GPTQ in fp32 on the CPU, seconds per 100M parameters per calibration row: SmolLM2-135M with 16 rows took 62 s on 2
# idle cores (119 s on shared ones). The refusal scales it by the model and the rows: an order of magnitude, which
# is all it has to say.
CPU_SECONDS_PER_100M_PARAMS_ROW = 3.0
QUANT_EXTRA = "pip install 'tune-wizard[quant]'"


def export_quantized(ref: str | Path, out_dir: str | Path | None = None, scheme: str = "gptq",
                     group_size: int = DEFAULT_GROUP_SIZE, calibration_rows: int = DEFAULT_CALIBRATION_ROWS,
                     calibration_data: list[str] | None = None, force: bool = False, allow_cpu: bool = False,
                     log=print) -> Path:
    """Write the W4A16 model of a run folder (or of a plain model) to `out_dir`; return the folder.

    `calibration_data`: dataset files to calibrate on instead of the run's training data (a plain model has
    none). `allow_cpu`: quantize a model over CPU_PARAMS_LIMIT parameters without a GPU anyway.
    """
    ref = str(ref)
    is_run = rf.is_run_dir(Path(ref))
    if scheme not in SCHEMES:
        raise UserError(f"4-bit scheme '{scheme}': expected one of {', '.join(SCHEMES)}")
    if group_size not in GROUP_SIZES:
        raise UserError(f"--group-size {group_size}: expected one of {', '.join(map(str, GROUP_SIZES))}",
                        hint="128 is the usual choice; vLLM's 4-bit kernels take 32, 64 or 128")
    if calibration_rows < MIN_CALIBRATION_ROWS:
        raise UserError(f"--calibration-rows {calibration_rows}: at least {MIN_CALIBRATION_ROWS} are needed",
                        hint=f"{DEFAULT_CALIBRATION_ROWS} (the default) is enough for GPTQ and AWQ")
    if not is_run and not calibration_data:
        raise UserError(f"{ref}: not a run folder, so there is no training data to calibrate on",
                        hint="give a run folder, or name calibration rows with --calibration-data FILE.jsonl")
    out = Path(out_dir) if out_dir else (Path(ref) if is_run else Path.cwd() / Path(ref).name) / f"{scheme}-w4a16"
    check_out_dir(out, force)

    import torch

    from wizard.inference.loading import model_files

    # Every refusal that the model's config, the data and the machine decide comes before the library (seconds to
    # import) and the weights (minutes to load and merge at 7B).
    files = model_files(ref)
    trust = bool(files.spec and files.spec.model.trust_remote_code)
    arch, params = _check_architecture(files.weights, group_size, trust)
    cuda = torch.cuda.is_available()
    if scheme == "awq" and not cuda:
        raise UserError("no GPU: llm-compressor's AWQ needs one (it keeps calibration activations in page-locked "
                        "memory, which only a CUDA device provides)",
                        hint=f"use --gptq, which also runs on the CPU (about {_took(cpu_minutes(params, calibration_rows))} "
                             "for this model here), or export on a machine with a CUDA GPU")
    if not cuda and params > CPU_PARAMS_LIMIT and not allow_cpu:
        raise UserError(f"no GPU: llm-compressor quantizes {params / 1e9:.1f}B parameters on a GPU in minutes; on the "
                        f"CPU it would take about {_took(cpu_minutes(params, calibration_rows))} ({calibration_rows} "
                        "calibration rows, 2 cores)",
                        hint="run the export on a machine with a CUDA GPU, or add --allow-cpu to wait for it")

    # 16-bit scales whatever the calibration ran in: the serving kernels take fp16/bf16.
    saved_dtype = torch.float16 if auto_dtype(ref) == "fp16" else torch.bfloat16
    dtype = saved_dtype if cuda else torch.float32
    t0 = time.time()
    rows, source = calibration_set(files.spec, _tokenizer(files.tokenizer, trust), calibration_rows,
                                   calibration_data, log)
    tokens = sum(len(r) for r in rows)
    _require_library()
    if scheme == "awq":
        _check_awq_mapping(arch)
    name = str(dtype).removeprefix("torch.")
    log(f"loading {ref} in {name}{' and merging its adapter' if files.adapter else ''} ...")
    loaded = merged_model(ref, dtype, gpu=False)
    model, tokenizer = loaded.model, loaded.tokenizer
    log(f"quantizing with {scheme.upper()} W4A16 (group size {group_size}) on {'the GPU' if cuda else 'the CPU'}, "
        f"calibrating on {len(rows)} rows, {tokens} tokens, of {source} ...")
    t1 = time.time()
    _oneshot(model, rows, _recipe(scheme, group_size))
    log(f"quantized in {time.time() - t1:.0f} s")
    # GPTQ left each weight as its 4-bit integer times its scale; in 16-bit it still divides back to that integer.
    model.to(saved_dtype)

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.config.dtype = saved_dtype
        with warnings.catch_warnings():  # llm-compressor's CPU offloading of the model: saving it is what it is for
            warnings.filterwarnings("ignore", message="Attempting to save a model with offloaded modules")
            model.save_pretrained(tmp, save_compressed=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "export.json").write_text(json.dumps({
            "source": str(Path(ref).resolve()) if Path(ref).exists() else ref, "base_model": loaded.base_id,
            "adapter": str(files.adapter) if files.adapter else None, "format": "compressed-tensors",
            "scheme": scheme, "bits": 4, "group_size": group_size, "dtype": str(saved_dtype).removeprefix("torch."),
            "calibration": source, "calibration_rows": len(rows), "calibration_tokens": tokens,
            "library": _library_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }, indent=2) + "\n")
        (tmp / "README.md").write_text(readme(out, scheme, group_size))
        out.mkdir(parents=True, exist_ok=True)
        remove_model_files(out)  # --force: only what an export writes goes, as with --merge
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(f.stat().st_size for f in out.glob("*.safetensors")) / 2**20
    log(f"W4A16 model written to {out} ({size:.0f} MiB, {time.time() - t0:.0f} s)")
    return out


def cpu_minutes(params: int, rows: int) -> float:
    return CPU_SECONDS_PER_100M_PARAMS_ROW * params / 1e8 * rows / 60


def _took(minutes: float) -> str:
    return f"{minutes / 60:.0f} h" if minutes >= 90 else f"{max(1, round(minutes))} min"


def _tokenizer(folder: Path, trust: bool):
    from wizard.data.render import ensure_chat_template
    from wizard.model_source import load_tokenizer

    tokenizer = load_tokenizer(folder, trust)
    ensure_chat_template(tokenizer)
    return tokenizer


def _require_library() -> None:
    # llm-compressor logs every module it quantizes, to stdout, which carries the export's folder path: errors only
    # (unless its own LLM_COMPRESSOR_LOG_LEVEL asks for more), and to stderr (below, once it is imported).
    os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "ERROR")
    try:
        importlib.import_module("llmcompressor")
        importlib.import_module("compressed_tensors")
    except ImportError as err:
        raise UserError(f"4-bit export needs llm-compressor, which is not installed ({err})",
                        hint=f"{QUANT_EXTRA} (it brings transformers 5.15-5.17, the range llm-compressor "
                             "supports; a separate virtual environment keeps your training one as it is)") from None
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=os.environ["LLM_COMPRESSOR_LOG_LEVEL"].upper(),
               format="{time:HH:mm:ss} | {level} - {message}")


def _library_version() -> str:
    from importlib.metadata import version

    return f"llmcompressor {version('llmcompressor')}, compressed-tensors {version('compressed-tensors')}"


def _check_architecture(weights: Path, group_size: int, trust: bool) -> tuple[str, int]:
    """Refuse, before loading any weights, a model that llm-compressor or the serving kernels cannot take; return
    its architecture and parameter count (from a meta-device model built from the config)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    cfg = AutoConfig.from_pretrained(weights, trust_remote_code=trust)
    # A config without `architectures` (written by hand, or by an older tool) names its causal LM by its model type.
    arch = (getattr(cfg, "architectures", None)
            or [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(cfg.model_type, type(cfg).__name__)])[0]
    if not arch.endswith("ForCausalLM"):
        raise UserError(f"{arch}: 4-bit export handles text-only causal language models (…ForCausalLM)",
                        hint="export it with --merge and quantize it with llm-compressor's own examples")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, trust_remote_code=trust)
    bad = sorted({m.in_features for name, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head") and m.in_features % group_size})
    if bad:
        fits = [g for g in sorted(GROUP_SIZES, reverse=True) if g < group_size and all(n % g == 0 for n in bad)]
        raise UserError(f"{arch}: layers with {', '.join(map(str, bad))} input columns do not split into groups "
                        f"of {group_size}", hint=f"use --group-size {fits[0]}" if fits else
                        "this model's layer sizes suit no 4-bit group size the serving kernels take")
    return arch, sum(p.numel() for p in model.parameters())


def _check_awq_mapping(arch: str) -> None:
    from llmcompressor.modifiers.transform.awq import AWQ_MAPPING_REGISTRY
    from llmcompressor.modifiers.transform.awq.dynamic_mappings import AWQ_DYNAMIC_MAPPING_REGISTRY

    if arch not in AWQ_MAPPING_REGISTRY and arch not in AWQ_DYNAMIC_MAPPING_REGISTRY:
        raise UserError(f"{arch}: llm-compressor has no AWQ layer mapping for this architecture",
                        hint="use --gptq, which needs no mapping")


def calibration_set(spec, tokenizer, n: int, paths: list[str] | None = None,
                    log=print) -> tuple[list[list[int]], str]:
    """(up to `n` token-id rows, where they came from): the run's training conversations (or `paths`) rendered
    with the chat template exactly as training rendered them (system prompt, template, truncation), sampled with
    the run's seed; a DPO run's rows are its prompts with the chosen answers."""
    from wizard.data.load import load_examples
    from wizard.data.render import tokenize_sft
    from wizard.spec import DataSpec

    if paths:
        data = DataSpec(train=list(paths))
        task, seed, max_length = "sft", 42, MAX_CALIBRATION_LENGTH
        source = ", ".join(paths)
    else:
        data, task, seed = spec.data, spec.task, spec.train.seed
        max_length = min(spec.data.max_length, MAX_CALIBRATION_LENGTH)
        source = "the run's training data"
    examples, evals, _ = load_examples(data, task=task, seed=seed)
    examples = examples + evals
    if task == "dpo":  # a preference row: the prompt and the chosen answer, the text the model should produce
        examples = [{"messages": ex["prompt"] + ex["chosen"], "where": ex.get("where")} for ex in examples]
    random.Random(seed).shuffle(examples)
    rows, _ = tokenize_sft(examples[: n * 2], tokenizer, max_length=max_length, overflow="truncate",
                           assistant_only_loss=False)
    rows = [r["input_ids"] for r in rows if len(r["input_ids"]) >= 8][:n]
    if len(rows) < MIN_CALIBRATION_ROWS:
        where = f"--calibration-data {source}" if paths else f"the run's training data ({', '.join(map(str, data.train))})"
        raise UserError(f"too few calibration rows: {where} gives {len(rows)}, and at least "
                        f"{MIN_CALIBRATION_ROWS} are needed to estimate the 4-bit scales",
                        hint="name more rows of the same kind with --calibration-data FILE.jsonl")
    if len(rows) < n:
        log(f"calibrating on all {len(rows)} rows the data has (asked for {n})")
    return rows, source


def _recipe(scheme: str, group_size: int):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    weights = QuantizationArgs(num_bits=4, type="int", strategy="group", group_size=group_size,
                               symmetric=scheme == "gptq")  # AWQ's usual form is asymmetric (zero points)
    groups = {"group_0": QuantizationScheme(targets=["Linear"], weights=weights)}
    if scheme == "gptq":
        from llmcompressor.modifiers.quantization import GPTQModifier

        return [GPTQModifier(config_groups=groups, ignore=["lm_head"])]
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform import AWQModifier

    return [AWQModifier(), QuantizationModifier(config_groups=groups, ignore=["lm_head"])]


def _oneshot(model, rows: list[list[int]], recipe) -> None:
    from datasets import Dataset
    from llmcompressor import oneshot

    dataset = Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]})
    oneshot(model=model, dataset=dataset, recipe=recipe, num_calibration_samples=len(rows),
            max_seq_length=max(len(r) for r in rows), shuffle_calibration_samples=False)


def readme(out: Path, scheme: str, group_size: int) -> str:
    path = out.resolve()
    return f"""# {out.name}: 4-bit W4A16 ({scheme.upper()}, group size {group_size}), compressed-tensors format

Made by `tune-wizard export --{scheme}` from the run named in export.json. The weights of every Linear layer but
lm_head are 4-bit integers with a 16-bit scale per {group_size} input columns; activations stay 16-bit. The
tokenizer and chat template are the ones the run trained with.

Serve it on a GPU (an OpenAI-compatible API on port 8000, 30000 and 8080):

    vllm serve {path}
    python -m sglang.launch_server --model-path {path}
    docker run --gpus all --shm-size 1g -p 8080:80 -v {path}:/model \\
        ghcr.io/huggingface/text-generation-inference --model-id /model

or with tune-wizard itself (transformers; needs `pip install compressed-tensors`):

    tune-wizard serve {path}
    tune-wizard chat {path}

Load it in Python (needs `pip install compressed-tensors`):

    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained("{path}")
"""
