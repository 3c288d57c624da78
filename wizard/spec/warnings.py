"""Values a spec may hold that are legal but almost surely a mistake: the one list of such rules.

The wizard warns and asks (keep / change) and `tune-wizard validate` prints the same lines as warnings (exit
0): a spec with lr 0.5 is valid, and sometimes meant, but rarely. Each rule reads the spec and the facts
its caller could find about the model, the machine and the data (`Facts`); a fact nobody could find (a
model whose config is out of reach) silences the rules that need it, never guesses.
"""
from __future__ import annotations

from dataclasses import dataclass

# The learning rates of the common recipes, and where a rate stops being a choice and becomes a slip: LoRA's
# usual range is ms-swift's 1e-4 and the QLoRA paper's 2e-4 give or take a few times; full fine-tuning an
# order of magnitude lower. A rate ~20x past the top of the range diverges or forgets the model's skills.
USUAL_LR = {"lora": (1e-5, 5e-4), "qlora": (1e-5, 5e-4), "full": (5e-6, 5e-5)}
LR_WARN = {"lora": 1e-2, "qlora": 1e-2, "full": 1e-3}
MIN_EVAL_ROWS = 10      # an eval loss over fewer rows moves with each row, not with the model
MAX_EVAL_SPLIT = 0.5    # past half, most of the data is held out of training
NEEDS_CUDA_OPTIMIZERS = ("adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit")  # bitsandbytes' kernels


@dataclass(frozen=True)
class Facts:
    """What the caller knows beyond the spec; None: unknown."""

    context: int | None = None               # the model's context length (config max_position_embeddings)
    modules: frozenset[str] | None = None    # the names of the model's linear layers (what LoRA targets name)
    cuda: bool | None = None                 # whether the run has a CUDA GPU
    rows: int | None = None                  # training rows before the eval split
    eval_rows: int | None = None             # the rows eval_split holds out of them
    model: str | None = None                 # the chosen model, in the form adapter_base is compared in
    adapter_base: str | None = None          # the model model.adapter was trained on, in that form


@dataclass(frozen=True)
class SpecWarning:
    field: str   # the dotted spec field to change
    text: str    # what is odd, with the numbers
    fix: str     # the usual value or what to do

    def __str__(self) -> str:
        return f"{self.field}: {self.text}; {self.fix}"


def check(spec, facts: Facts) -> list[SpecWarning]:
    """Every warning for this spec, in the order of its fields."""
    out: list[SpecWarning] = []
    if facts.model and facts.adapter_base and spec.task == "dpo" and spec.model.adapter \
            and facts.model != facts.adapter_base:
        out.append(SpecWarning("model.adapter", f"that run was trained on {facts.adapter_base}, not on "
                               f"{facts.model}: DPO would start from an adapter made for another model",
                               f"choose {facts.adapter_base} as the model, or an SFT run of {facts.model}"))
    targets = spec.lora.target_modules
    if spec.method != "full" and facts.modules and isinstance(targets, list):
        unknown = [t for t in targets if t not in facts.modules]
        if unknown:
            out.append(SpecWarning("lora.target_modules", f"{', '.join(unknown)}: not a layer of this model "
                                   f"(its linear layers: {', '.join(sorted(facts.modules))})",
                                   "use those names, auto or all-linear"))
    if facts.context and spec.data.max_length > facts.context:
        out.append(SpecWarning("data.max_length", f"{spec.data.max_length} is beyond the model's context "
                               f"({facts.context} tokens): positions past it were never trained",
                               f"use {facts.context} or less"))
    split = spec.data.eval_split
    if split > MAX_EVAL_SPLIT:
        out.append(SpecWarning("data.eval_split", f"{split:g} holds more than half the rows out of training",
                               "0.05-0.1 is usual (0: no eval)"))
    elif split > 0 and not spec.data.eval and facts.eval_rows is not None and facts.eval_rows < MIN_EVAL_ROWS:
        of = f" of {facts.rows} rows" if facts.rows is not None else ""
        out.append(SpecWarning("data.eval_split", f"{split:g}{of} leaves {facts.eval_rows} eval "
                               f"row{'s' if facts.eval_rows != 1 else ''}: a loss over fewer than "
                               f"{MIN_EVAL_ROWS} rows is noise", "0 (no eval), or a share that holds out "
                               f"{MIN_EVAL_ROWS}+ rows"))
    lr, method = spec.train.lr, spec.method
    if lr >= LR_WARN[method]:
        lo, hi = USUAL_LR[method]
        out.append(SpecWarning("train.lr", f"{lr:g} is far above the usual {lo:g}-{hi:g} for {method}: the loss "
                               "is likely to diverge", f"e.g. {2e-4 if method != 'full' else 1e-5:g}"))
    if facts.cuda is False and spec.train.optimizer in NEEDS_CUDA_OPTIMIZERS:
        out.append(SpecWarning("train.optimizer", f"{spec.train.optimizer} is bitsandbytes' CUDA optimizer; "
                               "this machine has no CUDA GPU", "adamw_torch"))
    return out
