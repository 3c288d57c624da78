"""Load a model for training: precision, 4-bit quantization, LoRA.

Deliberately not the common HF recipe's `prepare_model_for_kbit_training`: it casts the output head,
embeddings and norms to float32 (for a 152k-vocabulary model that is ~2 GB more and fp32 matmuls on the
largest layer) and forces gradient checkpointing. Here the frozen weights stay in the compute dtype, the
LoRA matrices are float32 (peft's default), and checkpointing is a separate, measured choice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from wizard.catalog import default_targets, lookup
from wizard.errors import ModelError, SpecError
from wizard.hardware import pick_precision, torch_dtype
from wizard.spec import RunSpec

log = logging.getLogger(__name__)


@dataclass
class Precision:
    name: str                 # bf16 | fp16 | fp32
    weights: torch.dtype      # dtype the frozen weights are loaded in
    compute: torch.dtype      # 4-bit compute dtype
    trainer_bf16: bool
    trainer_fp16: bool


def device_label(processes: int = 1) -> str:
    """What the run trains on: "cuda:0 (NVIDIA H200)", "2 x cuda (NVIDIA H200)", "cpu", "2 x cpu"."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.cuda.current_device())
        return f"{processes} x cuda ({name})" if processes > 1 else f"cuda:0 ({name})"
    return f"{processes} x cpu" if processes > 1 else "cpu"


def choose_precision(requested: str, method: str) -> Precision:
    """The spec's precision on this machine (hardware.pick_precision), as the dtypes and Trainer flags it means."""
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    name = pick_precision(requested, cuda, bf16)
    if requested not in ("auto", name):
        log.warning("precision %s requested but there is no GPU; training in fp32", requested)
    if name == "bf16" and not bf16:
        raise SpecError(f"train.precision: bf16 is not supported by {torch.cuda.get_device_name(0)}; "
                        "use fp16 or auto")
    dtype = torch_dtype(name)
    # Full fine-tuning in fp16 needs fp32 master weights (the grad scaler refuses fp16 parameters).
    weights = torch.float32 if (method == "full" and name == "fp16") else dtype
    return Precision(name, weights, dtype, trainer_bf16=cuda and name == "bf16", trainer_fp16=cuda and name == "fp16")


def resolve_targets(spec: RunSpec, model) -> list[str] | str:
    wanted = spec.lora.target_modules
    if wanted == "all-linear":
        return "all-linear"
    if wanted == "auto":
        entry = lookup(spec.model.id)
        wanted = list(entry.target_modules) if entry else default_targets(getattr(model.config, "model_type", ""))
    linear_names = {name for name, mod in model.named_modules() if _is_linear(mod)}
    missing = [t for t in wanted if not any(n == t or n.endswith("." + t) for n in linear_names)]
    if missing:
        leaves = sorted({n.split(".")[-1] for n in linear_names if "lm_head" not in n})
        raise SpecError(f"lora.target_modules: {', '.join(missing)} not found in this model; "
                        f"its linear layers are: {', '.join(leaves)} (or use all-linear)")
    return list(wanted)


def _is_linear(mod) -> bool:
    if isinstance(mod, torch.nn.Linear):
        return True
    return type(mod).__name__ in ("Linear4bit", "Linear8bitLt", "Conv1D")


def load_base(path: Path, spec: RunSpec, precision: Precision, quantize: bool, attention: str = "sdpa",
              device: int = 0, sharded: bool = False):
    """The base model on GPU DEVICE (this process's, in a run on several GPUs). sharded: FSDP will split it, so
    4-bit weights are stored in the compute dtype, which FSDP can shard (the FSDP-QLoRA recipe of peft's docs)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict = {"dtype": precision.weights, "trust_remote_code": spec.model.trust_remote_code,
                    "attn_implementation": attention}
    if quantize:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise ModelError(f"method qlora needs bitsandbytes, which failed to import ({exc})",
                             hint="pip install bitsandbytes, or use method: lora") from None
        if spec.quant.bits == 4:
            compute = precision.compute if spec.quant.compute_dtype == "auto" else torch_dtype(spec.quant.compute_dtype)
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=spec.quant.type,
                bnb_4bit_use_double_quant=spec.quant.double_quant, bnb_4bit_compute_dtype=compute,
                **({"bnb_4bit_quant_storage": compute} if sharded else {}))
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        if torch.cuda.is_available():
            kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"model at {path} could not be loaded: {str(exc).splitlines()[0][:300]}",
                         hint="check that the folder holds a causal language model (config.json + weights)") from None
    if torch.cuda.is_available() and not quantize and not sharded:
        model.to(f"cuda:{device}")  # (FSDP moves each process's shard itself)
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    return model


def attach_lora(model, spec: RunSpec, gradient_checkpointing: bool):
    from peft import LoraConfig, PeftModel, get_peft_model

    if gradient_checkpointing:
        # Non-reentrant checkpointing needs no input-grad hook and works with frozen embeddings.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if spec.model.adapter:
        adapter = adapter_dir(spec.model.adapter)
        return PeftModel.from_pretrained(model, adapter, is_trainable=True)
    config = LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                        target_modules=resolve_targets(spec, model), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def adapter_dir(ref: str) -> Path:
    """A run folder's adapter/, or an adapter folder itself."""
    p = Path(ref)
    if (p / "adapter" / "adapter_config.json").is_file():
        return p / "adapter"
    if (p / "adapter_config.json").is_file():
        return p
    raise SpecError(f"model.adapter '{ref}': no adapter_config.json there or in its adapter/ folder",
                    hint="point at a finished LoRA/QLoRA run folder (runs/<name>-<time>)")


def count_parameters(model) -> tuple[int, int]:
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        # 4-bit weights are packed two to a byte: count the parameters they stand for.
        if p.__class__.__name__ == "Params4bit":
            n *= 2
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def build_model(spec: RunSpec, path: Path, precision: Precision, gradient_checkpointing: bool,
                vocab_size: int | None = None, attention: str = "sdpa", device: int = 0, sharded: bool = False):
    """The model ready to train, and its (trainable, total) parameter counts. attention: the
    attn_implementation wizard.engine.attention chose; device: this process's GPU; sharded: trained with FSDP."""
    quantize = spec.method == "qlora"
    model = load_base(path, spec, precision, quantize, attention, device, sharded)
    if vocab_size and vocab_size > model.get_input_embeddings().weight.shape[0]:
        # The fallback chat template added an end-of-turn token this tokenizer lacked.
        model.resize_token_embeddings(vocab_size)
    if spec.method == "full":
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        model = attach_lora(model, spec, gradient_checkpointing)
    return model, count_parameters(model)
