"""The memory model behind `tune-wizard estimate`, the wizard's defaults and gradient checkpointing `auto`.

It counts what is alive on the device at the step's peak, from a model's shape alone (no weights):
frozen weights (16-bit, or 4-bit NF4 with its quantization constants), LoRA matrices (float32, peft's
default), their gradients and optimizer states, the tensors autograd saves for the backward pass, and the
loss on the logits. The saved tensors follow what transformers + peft + the HF Trainer (autocast) keep,
checked tensor by tensor on the CPU (see tests/unit/test_estimate.py) and against measured GPU peaks
(bench/estimate_vs_measured.py):

- each RMSNorm keeps its float32 input (4 B/value); SDPA keeps q, k, v, its output and a float32
  log-sum-exp, never an L x L matrix; a gated MLP keeps gate, act(gate) and up;
- a frozen projection keeps nothing; a LoRA branch keeps its dropout mask (1 B) and the 16-bit copy
  of its input that lora_A multiplies (peft casts to float32, autocast casts back);
- the loss upcasts the logits to float32, log_softmax keeps its float32 output, and the first backward
  step holds that plus two float32 gradients: 12 bytes per token per vocabulary entry. For a 150k
  vocabulary at 2048 tokens that is 3.5 GiB, more than the 4-bit weights of a 3B model.

Sizes are GiB (2**30 bytes), as torch and nvidia-smi report them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from wizard.estimate.shape import Shape, as_shape, projections, shape_for_model, shape_from_config
from wizard.hardware import PRECISIONS, pick_precision
from wizard.spec import fields

__all__ = ["Breakdown", "Shape", "available_memory", "estimate", "estimate_for_spec", "method_table", "recommend",
           "shape_for_model", "shape_from_config"]

GIB = 2**30
PART_LABELS = {
    "weights": "weights", "lora": "LoRA adapters", "gradients": "gradients", "optimizer": "optimizer states",
    "activations": "activations", "logits": "logits and loss", "transient": "temporaries",
    "overhead": "CUDA context and allocator slack",
}
# On a CPU the overhead part is the Python and torch runtime in RAM (CPU_RUNTIME_GB), not a CUDA context.
CPU_PART_LABELS = {**PART_LABELS, "overhead": "Python and torch runtime"}
# Outside torch's allocator: the CUDA context with cuBLAS/cuDNN/bitsandbytes loaded (0.75 GiB measured on
# an H200, torch 2.11 + CUDA 13, at every model size). Reserved above allocated: the caching allocator's
# slack, which follows the size of the float32 logits blocks (H200: 0.2-0.5 GiB at 512 tokens, 0.7-1.0 at
# 2048 with a 152k vocabulary; bench/results/estimate_vs_measured.md).
CUDA_CONTEXT_GB = 0.75
ALLOCATOR_SLACK_GB = 0.2
LOGITS_SLACK = 0.2
CUBLAS_WORKSPACE_GB = 0.0625  # cuBLAS/cuBLASLt workspaces of the forward and the autograd threads (allocated)
CPU_RUNTIME_GB = 0.8       # python + torch + transformers in RAM on a CPU run
NF4_BYTES = {True: (4 + 0.127) / 8, False: (4 + 0.5) / 8}  # 4-bit + absmax per 64 (double quant: 8-bit absmax)
# SFT's loss runs the output head and cross-entropy this many tokens at a time (wizard/engine/chunked_loss.py),
# for these families (decoder -> lm_head -> cross-entropy; MoE router losses and scaled logits excluded).
LOSS_CHUNK_TOKENS = 512
CHUNKED_LOSS_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3")
STATES = {"adamw_torch": 2, "adamw_torch_fused": 2, "paged_adamw_32bit": 2, "adamw_8bit": 2, "paged_adamw_8bit": 2,
          "sgd": 0, "adafactor": 0}


@dataclass
class Breakdown:
    parts: dict                     # name -> GiB, in display order; sums to total_gb
    total_gb: float                 # what the device must hold (what `verdict` compares)
    allocated_gb: float             # the part torch.cuda.max_memory_allocated() sees (total less overhead)
    peak: str                       # which moment of the step is the peak
    params: int                     # parameters of the model
    trainable: int                  # parameters that get gradients
    inputs: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    shape: Shape | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("shape", None)
        out["parts"] = {k: round(v, 3) for k, v in self.parts.items()}
        out["total_gb"] = round(self.total_gb, 3)
        out["allocated_gb"] = round(self.allocated_gb, 3)
        return out


def _lora_targets(shape: Shape, target_modules) -> tuple[list[tuple[str, int, int]], list[str]]:
    """(name, in, out) per targeted projection of one layer, and notes on names the shape does not know."""
    projs = projections(shape)
    if target_modules in (None, "auto"):
        target_modules = list(shape.targets)
    if target_modules == "all-linear":
        return [(n, i, o) for n, (i, o) in projs.items()], []
    if isinstance(target_modules, str):
        target_modules = [target_modules]
    out, notes = [], []
    for t in target_modules:
        leaf = str(t).split(".")[-1]
        if leaf in projs:
            out.append((leaf, *projs[leaf]))
        else:
            out.append((leaf, shape.hidden, shape.hidden))
            notes.append(f"target '{t}' is not a projection of a {shape.model_type} layer; counted as hidden x hidden")
    return out, notes


def _lora_params(s: Shape, targets, r: int) -> int:
    return s.layers * sum(r * (i + o) for _, i, o in targets)


def parameter_counts(shape: Shape | Mapping, method: str = "qlora", lora_r: int = 8,
                     target_modules: Sequence[str] | str | None = None) -> tuple[int, int]:
    """(the model's parameters, the parameters a run of METHOD trains): what its checkpoints hold."""
    s = as_shape(shape)
    if method == "full":
        return s.params, s.params - int(s.extra_params_b * 1e9)
    return s.params, _lora_params(s, _lora_targets(s, target_modules)[0], lora_r)


def estimate(shape: Shape | Mapping, method: str = "qlora", precision: str = "bf16", lora_r: int = 8,
             target_modules: Sequence[str] | str | None = None, max_length: int = 2048, batch_size: int = 1,
             grad_ckpt: bool = True, optimizer: str = "adamw_torch", *, lora_dropout: float = 0.05,
             quant_bits: int = 4, double_quant: bool = True, device: str = "cuda", task: str = "sft",
             packed: bool = False, chunked_loss: bool | None = None, shards: int = 1) -> Breakdown:
    """Peak device memory of one training step, broken down. packed: max_length is a forward pass of whole rows
    concatenated (batching tokens): on a GPU the varlen kernel needs no mask; on a CPU sdpa gets a dense
    block-diagonal one. chunked_loss: the loss takes LOSS_CHUNK_TOKENS of logits at a time. shards: FSDP over
    this many GPUs (the figure is per GPU): weights, adapters, gradients and optimizer states are split, and
    the layer being computed, with the next one prefetched, is gathered whole."""
    s = as_shape(shape)
    if method not in fields.choices("method"):
        raise ValueError(f"method must be one of {', '.join(fields.choices('method'))}, not {method!r}")
    precision = "bf16" if precision in (None, "auto") else precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    h, hd, qd, kvd = s.hidden, s.hd, s.q_dim, s.kv_dim
    inter = s.intermediate * max(1, s.experts_active)         # MoE: each token runs its top-k experts
    a = 4 if precision == "fp32" else 2                       # bytes of an activation
    autocast = precision != "fp32"                            # the Trainer's mixed precision
    seqs = batch_size * (2 if task == "dpo" else 1)           # DPO: chosen and rejected go through together
    tokens = seqs * max_length
    notes: list[str] = []

    # ---- parameters
    projs = projections(s)
    n_linear = s.layers * sum(i * o for i, o in projs.values())
    if s.experts:
        mlp = sum(i * o for n, (i, o) in projs.items() if n in s.mlp_names)
        n_linear += s.layers * (mlp * (s.experts - 1) + h * s.experts)
    n_embed = s.vocab * h * (1 if s.tied else 2)
    n_extra = int(s.extra_params_b * 1e9)
    n_params = s.params
    n_small = n_params - n_linear - n_embed - n_extra          # norms and biases

    targets, tnotes = _lora_targets(s, target_modules)
    notes += tnotes
    n_lora = _lora_params(s, targets, lora_r) if method != "full" else 0

    if method == "full":
        # The engine loads full fine-tuning in the training dtype, except fp16 (the grad scaler needs
        # float32 master weights; autocast then keeps fp16 copies of the matrices for backward).
        pb = 4 if precision in ("fp16", "fp32") else 2
        weights = n_params * pb + (n_linear * 2 if precision == "fp16" else 0)
        trainable, grad_b = n_params - n_extra, pb
    else:
        pb = 4                                                 # LoRA matrices: float32 (peft's autocast_adapter_dtype)
        if method == "qlora":
            qb = NF4_BYTES[bool(double_quant)] if quant_bits == 4 else 1 + 4 / max(h, 1)
            weights = n_linear * qb + (n_embed + n_small + n_extra) * a
        else:
            weights = n_params * a
        trainable, grad_b = n_lora, 4
    lora_b = n_lora * 4
    grads = trainable * grad_b
    opt = _optimizer_bytes(optimizer, method, s, targets, lora_r, trainable, pb)
    # foreach AdamW (adamw_torch on CUDA) builds one temporary list the size of the states it reads; on
    # the CPU it steps one tensor at a time.
    opt_temp = 0
    if optimizer in ("adamw_torch", "paged_adamw_32bit"):
        opt_temp = trainable * pb if device == "cuda" else min(trainable, max(s.vocab * h, 1)) * pb

    # ---- what autograd keeps per token per layer
    dropout = lora_dropout > 0
    norm_b = s.norms * (4 * h + (a * h if method == "full" else 0))
    qk_b = 4 * (qd + kvd) if s.qk_norm else 0
    # One sequence has no padding, hence no mask: SDPA runs causal, GQA without copies (head_dim <= 256).
    gqa_native = seqs == 1 and hd <= 256 and not (packed and device == "cpu")
    attn_b = a * (2 * qd + 2 * kvd if gqa_native else 4 * qd) + 4 * s.heads
    mlp_b = 3 * a * inter
    # CUDA's fused dropout keeps a 1-byte mask; the CPU kernel keeps a float32 noise tensor instead.
    lora_in_b = (a if autocast else 4) + ((1 if device == "cuda" else 4) if dropout else 0)
    lora_b_act = sum(lora_in_b * i + (a if autocast else 4) * lora_r for _, i, _ in targets) if method != "full" else 0
    full_b = a * (2 * h + qd + inter) if method == "full" else 0
    layer_b = norm_b + qk_b + attn_b + mlp_b + lora_b_act + full_b
    # With a padding mask SDPA turns it into a 16-bit bias that every layer saves.
    mask_layer = 0 if gqa_native else a * seqs * max_length * max_length
    final_norm = 4 * h * tokens

    # Backward through one layer: gradients of the MLP's three tensors and of the residual stream, plus
    # for QLoRA the dequantized 16-bit copy of the largest matrix.
    bwd_temp = (3 * a * inter + 4 * a * h) * tokens
    if device == "cuda":
        bwd_temp += (4 + 2 * a) * qd * tokens                 # flash backward: float32 dq accumulator, dk/dv per head
    if method == "qlora":
        bwd_temp += max(i * o for i, o in projs.values()) * a
    if not gqa_native:
        final_norm += seqs * max_length * max_length           # the boolean causal + padding mask itself
    if grad_ckpt:
        saved = s.layers * a * h * tokens + final_norm + a * h * tokens
        layer_phase = layer_b * tokens + mask_layer + bwd_temp
    else:
        saved = s.layers * (layer_b * tokens + mask_layer) + final_norm
        layer_phase = bwd_temp
    # The logits live one chunk at a time when SFT computes its loss in chunks (chunked_loss None: as the engine
    # does, for SFT on the families it supports).
    if chunked_loss is None:
        chunked_loss = task == "sft" and s.model_type in CHUNKED_LOSS_FAMILIES
    loss_tokens = min(tokens, LOSS_CHUNK_TOKENS) if chunked_loss else tokens
    logits_phase = loss_tokens * s.vocab * (12 + (a if s.softcap else 0))

    if logits_phase >= max(layer_phase, opt_temp):
        peak, acts, logits, temp = "loss backward (logits)", saved, logits_phase, 0
    elif layer_phase >= opt_temp:
        peak, acts, logits, temp = "backward through a layer", saved + layer_phase - bwd_temp, 0, bwd_temp
    else:
        peak, acts, logits, temp = "optimizer step", 0, 0, opt_temp

    if device == "cuda":
        temp += CUBLAS_WORKSPACE_GB * GIB
    if shards > 1:
        temp += 2 * weights / max(s.layers, 1)  # two layers gathered whole (the one computed, the prefetched one)
        weights, lora_b, grads, opt = (x / shards for x in (weights, lora_b, grads, opt))
        notes.append(f"FSDP over {shards} GPUs: weights, adapters, gradients and optimizer states split; per GPU")
    parts = {"weights": weights, "lora": lora_b, "gradients": grads, "optimizer": opt,
             "activations": acts, "logits": logits, "transient": temp}
    allocated = sum(parts.values())
    if device == "cuda":
        overhead = (CUDA_CONTEXT_GB + ALLOCATOR_SLACK_GB) * GIB + LOGITS_SLACK * logits_phase
    else:
        overhead = CPU_RUNTIME_GB * GIB
    parts["overhead"] = overhead
    parts = {k: v / GIB for k, v in parts.items()}
    if s.softcap:
        notes.append("Gemma 2 trains best with eager attention, which stores L x L scores per layer; this "
                     "estimate assumes SDPA")
    if method == "qlora" and quant_bits == 8:
        notes.append("8-bit weights: about 1 byte per parameter")
    if optimizer.startswith("paged_"):
        notes.append("paged optimizer states can spill to CPU RAM under pressure")
    inputs = dict(method=method, precision=precision, lora_r=lora_r,
                  target_modules=target_modules if isinstance(target_modules, str) or target_modules is None
                  else list(target_modules),
                  max_length=max_length, batch_size=batch_size, grad_ckpt=bool(grad_ckpt), optimizer=optimizer,
                  lora_dropout=lora_dropout, device=device, task=task, packed=packed, shards=shards)
    return Breakdown(parts=parts, total_gb=sum(parts.values()), allocated_gb=allocated / GIB, peak=peak,
                     params=n_params, trainable=trainable, inputs=inputs, notes=notes, shape=s)


def _optimizer_bytes(optimizer: str, method: str, s: Shape, targets, r: int, trainable: int, pb: int) -> float:
    if optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        return trainable * 2 * (1 + 4 / 256)                  # two uint8 states + a float32 absmax per 256
    if optimizer == "paged_adamw_32bit":
        return trainable * 8
    if optimizer == "adafactor":
        # Factored second moment: a row and a column vector per matrix, in float32.
        if method == "full":
            per_layer = sum(i + o for i, o in projections(s).values())
            return 4 * (s.layers * per_layer + (s.vocab + s.hidden) * (1 if s.tied else 2))
        return 4 * s.layers * sum((r + i) + (o + r) for _, i, o in targets)
    return trainable * STATES.get(optimizer, 2) * pb


# ----------------------------------------------------------------------------- spec, plan, methods

def estimate_for_spec(spec, hardware=None, *, shape: Shape | Mapping | None = None, **overrides) -> Breakdown:
    """The estimate of a RunSpec: its model's shape (catalog, local config.json, or config.json alone
    from the hub), its method and settings, on this hardware (precision `auto` resolved from it)."""
    s = as_shape(shape) if shape is not None else shape_for_model(spec.model.id, hub=spec.model.hub,
                                                                  revision=spec.model.revision)
    gpu = first_gpu(hardware)
    device = "cuda" if (gpu is not None or hardware is None) else "cpu"
    precision = pick_precision(spec.train.precision, device == "cuda", gpu is None or gpu.bf16)
    kw: dict[str, Any] = dict(
        method=spec.method, precision=precision, lora_r=spec.lora.r, target_modules=spec.lora.target_modules,
        max_length=spec.data.max_length, batch_size=spec.train.batch_size, grad_ckpt=True,
        optimizer=spec.train.optimizer, lora_dropout=spec.lora.dropout, quant_bits=spec.quant.bits,
        double_quant=spec.quant.double_quant, device=device, task=spec.task)
    kw.update(overrides)
    reason = ""
    if spec.task == "sft" and spec.train.batching == "tokens" and "max_length" not in overrides:
        p = plan_for_spec(spec, hardware, s, device=device, precision=precision, shards=kw.get("shards", 1))
        kw.update(max_length=p.batch_tokens, batch_size=1, packed=True)
        if "grad_ckpt" not in overrides and p.checkpointing is not None:
            kw["grad_ckpt"], reason = p.checkpointing, f"auto: {p.why}"
        b = estimate(s, **kw)
        if "grad_ckpt" not in overrides and p.checkpointing is None:
            mode = spec.train.gradient_checkpointing
            kw["grad_ckpt"], reason = (mode == "on", "set in the spec") if mode != "auto" else _auto_ckpt(s, kw, hardware)
            b = estimate(s, **kw)
        b.inputs.update(grad_ckpt_reason=reason, batch_tokens=p.batch_tokens, grad_accum=p.grad_accum,
                        batching_why=p.why)
        return b
    if "grad_ckpt" not in overrides:
        mode = spec.train.gradient_checkpointing
        kw["grad_ckpt"], reason = (mode == "on", "set in the spec") if mode != "auto" else _auto_ckpt(s, kw, hardware)
    b = estimate(s, **kw)
    if reason:
        b.inputs["grad_ckpt_reason"] = reason
    return b


def plan_for_spec(spec, hardware, shape: Shape | Mapping | None, *, device: str | None = None,
                  precision: str | None = None, dataset_tokens: int | None = None, processes: int = 1,
                  shards: int = 1):
    """The spec's batching with its `auto`s resolved for this machine (wizard.estimate.batching.plan), for a run of
    PROCESSES processes (GPUs) whose model is split over SHARDS of them (FSDP)."""
    gpu = first_gpu(hardware)
    device = device or ("cuda" if (gpu is not None or hardware is None) else "cpu")
    precision = precision or pick_precision(spec.train.precision, device == "cuda", gpu is None or gpu.bf16)
    kw = dict(method=spec.method, precision=precision, lora_r=spec.lora.r, target_modules=spec.lora.target_modules,
              optimizer=spec.train.optimizer, lora_dropout=spec.lora.dropout, quant_bits=spec.quant.bits,
              double_quant=spec.quant.double_quant, device=device, task=spec.task, shards=shards)
    if processes > 1:
        kw["chunked_loss"] = False  # the loss of a wrapped model (wizard.engine.sft.SftTrainer.compute_loss)
    t = spec.train
    return plan_batching(shape, hardware, kw, batching=t.batching if spec.task == "sft" else "rows",
                         batch_tokens=t.batch_tokens, grad_accum=t.grad_accum, max_length=spec.data.max_length,
                         ckpt_mode=t.gradient_checkpointing, dataset_tokens=dataset_tokens, batch_size=t.batch_size,
                         processes=processes)


def plan_batching(shape: Shape | Mapping | None, hardware, est: dict, *, batching: str, batch_tokens="auto",
                  grad_accum="auto", max_length: int, ckpt_mode: str = "auto", dataset_tokens: int | None = None,
                  headroom: float | None = None, batch_size: int = 1, processes: int = 1):
    """wizard.estimate.batching.plan with this model's memory estimate (est: estimate()'s settings) on this
    machine: on a GPU the budget is the fastest that fits in `headroom` of its free memory."""
    from wizard.estimate.batching import plan

    avail, _ = available_memory(hardware) if hardware is not None else (None, "")
    fits = None
    if est.get("device", "cuda") == "cuda" and shape is not None and avail:
        s = as_shape(shape)
        room = avail * (headroom or AUTO_CKPT_HEADROOM)

        def fits(tokens: int, ckpt: bool) -> tuple[bool, float]:
            gb = estimate(s, **{**est, "max_length": tokens, "grad_ckpt": ckpt, "batch_size": 1, "packed": True}).total_gb
            return gb <= room, gb
    return plan(batching, batch_tokens, grad_accum, max_length=max_length, fits=fits, ckpt_mode=ckpt_mode,
                dataset_tokens=dataset_tokens, batch_size=batch_size, processes=processes)


# The `auto` checkpointing rule, used by the engine (wizard/engine/training_args.py): off when the estimate without checkpointing
# fits in this share of the GPU's free memory.
AUTO_CKPT_HEADROOM = 0.85


def _auto_ckpt(s: Shape, kw: dict, hardware) -> tuple[bool, str]:
    if kw["device"] == "cpu":
        return False, "auto: CPU run, memory is not the limit"
    avail, _ = available_memory(hardware) if hardware is not None else (None, "")
    if not avail:
        return True, "auto: GPU memory unknown, on to be safe"
    without = estimate(s, **{**kw, "grad_ckpt": False}).total_gb
    budget = avail * AUTO_CKPT_HEADROOM
    if without <= budget:
        return False, f"auto: {without:.1f} GiB without it fits in {budget:.1f}"
    return True, f"auto: {without:.1f} GiB without it > {budget:.1f}"


def first_gpu(hardware):
    """The GPU training would run on: the first one this torch can use."""
    gpus = [g for g in (getattr(hardware, "gpus", None) or []) if getattr(g, "usable", True)]
    return gpus[0] if gpus else None


def available_memory(hardware) -> tuple[float | None, str]:
    """(GiB the run may use, what it is): GPU 0's free memory, else available CPU RAM."""
    gpu = first_gpu(hardware)
    if gpu is not None:
        return float(gpu.free_gb or gpu.total_gb), f"GPU {gpu.index} ({gpu.name})"
    ram = getattr(hardware, "ram_available_gb", None)
    return (float(ram) if ram else None), "CPU RAM"


def part_rows(b: Breakdown, device: str) -> list[tuple[str, float]]:
    """(label, GiB) of the breakdown as `tune-wizard estimate` and the wizard show it: labelled for the device,
    parts under 5 MiB left out (weights and activations always shown)."""
    labels = CPU_PART_LABELS if device == "cpu" else PART_LABELS
    return [(labels.get(name, name), float(gb)) for name, gb in b.parts.items()
            if gb >= 0.005 or name in ("weights", "activations")]


def method_table(shape: Shape | Mapping, available_gb: float | None = None, **kw) -> list[dict]:
    """full / LoRA / QLoRA side by side for the same settings: one row each, parts in GiB."""
    kw.pop("method", None)
    rows = []
    for method in ("full", "lora", "qlora"):
        b = estimate(shape, method=method, **kw)
        row = {"method": method, **{k: round(v, 2) for k, v in b.parts.items()}, "total": round(b.total_gb, 2),
               "trainable": b.trainable}
        if available_gb is not None:
            row["fits"] = b.total_gb <= available_gb
        rows.append(row)
    return rows


def recommend(shape: Shape | Mapping | None, hardware=None, task: str = "sft", *, method: str | None = None,
              max_length: int | None = None, total_batch: int = 16) -> dict:
    """Spec values for this model on this machine: the one source of the wizard's recommended settings.

    In order of preference: bf16 LoRA without gradient checkpointing (fastest), LoRA with it, QLoRA without,
    QLoRA with; max_length (the spec's default unless given) halves, down to 256, only when none of them
    fits; on a GPU with room to spare a batch of 2 or 4 replaces accumulation. `method` fixes the method
    (the one a user chose) and fits the rest to it. With no shape (a model whose config cannot be read) or
    no known memory, nothing can be measured: the QLoRA recipe's values, which fit the most machines."""
    if hardware is None:
        try:
            from wizard.hardware import detect

            hardware = detect()
        except Exception:  # noqa: BLE001 - no probe: assume nothing about the machine
            hardware = None
    avail, where = available_memory(hardware) if hardware is not None else (None, "an unknown machine")
    gpu = first_gpu(hardware)
    device = "cpu" if (hardware is not None and gpu is None) else "cuda"
    precision = pick_precision("auto", device == "cuda", gpu is None or gpu.bf16)
    base = dict(precision=precision, device=device, task=task)
    budget = avail * 0.9 if avail else None     # headroom for rows of unexpected length, other processes
    order = [(method, False), (method, True)] if method else [("lora", False), ("lora", True), ("qlora", False),
                                                               ("qlora", True)]
    length = int(max_length or fields.default("data.max_length"))
    s = as_shape(shape) if shape is not None else None
    if s is not None:
        length = min(length, s.context or length)

    def total(method, L, ckpt, bs=1) -> float:
        return estimate(s, method=method, max_length=L, grad_ckpt=ckpt, batch_size=bs, **base).total_gb

    if s is None or budget is None:
        method, L, ckpt = method or "qlora", length, True
        unknown = "the model's shape is unknown" if s is None else "memory of this machine unknown"
        reason = f"{unknown}: nothing to measure, so the QLoRA recipe's safe settings"
    else:
        choice, L = None, length
        while choice is None:
            choice = next(((m, c) for m, c in order if total(m, L, c) <= budget), None)
            if choice is None and L // 2 < 256:
                break
            if choice is None:
                L //= 2
        if choice is None:
            method, ckpt = method or "qlora", True
            reason = (f"even {method} at {L} tokens needs {total(method, L, True):.1f} GiB; {where} has "
                      f"{avail:.1f} GiB: use a smaller model")
        else:
            method, ckpt = choice
            reason = (f"{method} {'with' if ckpt else 'without'} gradient checkpointing fits {L} tokens in "
                      f"{avail:.1f} GiB of {where}")
            if L < length:
                reason += f" (not {length})"
    bs = 1
    if s is not None and budget is not None and device == "cuda" and not ckpt:
        for cand in (2, 4):
            if total(method, L, False, cand) <= 0.6 * budget:
                bs = cand
    lr = (1e-5 if method == "full" else 2e-4) if task == "sft" else 5e-5
    out = {"method": method, "max_length": L, "batching": "rows", "batch_tokens": None, "batch_size": bs,
           "grad_accum": max(1, round(total_batch / bs)), "gradient_checkpointing": ckpt, "lr": lr,
           "precision": precision, "estimate_gb": round(total(method, L, ckpt, bs), 2) if s is not None else None,
           "available_gb": round(avail, 2) if avail else None, "reason": reason}
    if task == "sft":
        # Batching by tokens: the budget and checkpointing are chosen together, as the engine will at the start.
        est = dict(method=method, precision=precision, device=device, task=task)
        p = plan_batching(s, hardware if device == "cuda" else None, est, batching="tokens", max_length=L)
        out.update(batching="tokens", batch_tokens=p.batch_tokens, batch_size=1, grad_accum=p.grad_accum)
        if p.checkpointing is not None:
            out["gradient_checkpointing"] = p.checkpointing
            out["estimate_gb"] = round(estimate(s, method=method, max_length=p.batch_tokens, grad_ckpt=p.checkpointing,
                                                packed=True, **base).total_gb, 2)
            out["reason"] += f"; {p.why}"
    return out
