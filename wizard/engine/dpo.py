"""Direct preference optimization with LoRA/QLoRA, read top to bottom: spec -> DPOConfig, pairs -> TRL rows,
TRL's DPOTrainer plus the two things it lacks here (prompt/completion length limits, one saved adapter).

The reference model is never a second copy of the weights:
- From a base model (`model.adapter` unset), the policy is the fresh adapter and the reference is the same
  model with the adapter switched off. TRL 1.16 always adds a frozen copy of the adapter named "ref" when it is
  given a PEFT model; a fresh adapter's copy is exactly the base (LoRA B starts at zero), so it is deleted and
  the reference forward runs with adapters disabled, which is cheaper and is what the reference means.
- From an SFT run (`model.adapter: runs/<sft-run>`), the loader has loaded the SFT adapter, trainable, as
  "default"; TRL's frozen copy "ref" of it stays, so the reference is the SFT policy (base + SFT adapter) and
  training continues the SFT adapter. The run's adapter/ therefore holds the SFT and DPO updates together and
  loads on the base model alone; only that trained adapter is saved (the reference copy is the SFT run's own
  adapter, already on disk).

TRL 1.16 dropped `max_prompt_length` / `max_completion_length` (it keeps one `max_length` and cuts the end of the
sequence). They are applied here after TRL tokenizes, as older TRL did: a prompt keeps its last
dpo.max_prompt_length tokens (the turn the answers reply to), an answer its first dpo.max_completion_length, and
prompt + answer never exceed data.max_length (the answer gives way first). With data.overflow: drop, a pair that
would be cut is left out instead.

The DPOTrainer internals this relies on are pinned to TRL_RANGE (pyproject.toml says the same); a run checks
the installed TRL before it loads anything.

TRL also switches dropout off (the policy/reference comparison must be deterministic), so lora.dropout has no
effect in DPO, and it casts QLoRA adapters to bf16; they are put back in the dtype the loader chose (float32),
as for SFT.
"""
from __future__ import annotations

import dataclasses
import os
from importlib.metadata import PackageNotFoundError, version
from statistics import mean

import torch

from wizard.data.render import common_prefix
from wizard.errors import DataError, UserError

REF_ADAPTER = "ref"       # the name TRL gives the frozen reference copy of an existing adapter
TRAINED_ADAPTER = "default"
_SHOWN = 3                # rows named in a truncation message

# TRL releases whose DPOTrainer internals PreferenceTrainer relies on: the private
# _prepare_dataset(dataset, processing_class, args, dataset_name) (same signature since 1.0) returning
# prompt_ids/chosen_ids/rejected_ids split where prompt and prompt + answer stop agreeing (since 1.14.2;
# tokenize_pair and dpo_eval mirror that split), the frozen "ref" copy of an existing adapter, DPOConfig
# without per-part lengths. Later releases are untried. pyproject.toml's trl line is the same range (a test
# keeps them equal). The other override, _save, is the transformers Trainer's (transformers<6 there).
TRL_RANGE = ">=1.14.2,<1.17"


class TrlVersionError(UserError):
    """The installed TRL is outside TRL_RANGE."""


def check_trl(installed: str | None = None) -> str:
    """The installed TRL version (or INSTALLED), if DPO supports it; else TrlVersionError saying how to fix it."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    fix = f'pip install "trl{TRL_RANGE}"'
    if installed is None:
        try:
            installed = version("trl")
        except PackageNotFoundError:
            raise TrlVersionError(f"DPO needs trl{TRL_RANGE}, and trl is not installed", hint=fix) from None
    try:
        ok = Version(installed) in SpecifierSet(TRL_RANGE)
    except InvalidVersion:
        ok = False
    if not ok:
        raise TrlVersionError(
            f"DPO needs trl{TRL_RANGE}; this environment has trl {installed}, whose DPOTrainer internals "
            "(_prepare_dataset, the reference adapter) tune-wizard's DPO was not built for",
            hint=fix)
    return installed


def check_environment() -> None:
    """Run before a DPO run loads anything (wizard.engine.runner.TASKS)."""
    check_trl()


# ------------------------------------------------------------------ spec -> DPOConfig

def pair_passes(spec, n_pairs: int, grad_accum: int) -> float:
    """How many times training sees each pair (epochs, or what max_steps amounts to)."""
    t = spec.train
    if t.max_steps > 0:
        return t.max_steps * t.batch_size * grad_accum / max(n_pairs, 1)
    return float(t.epochs)


def dpo_config(spec, args, precompute_ref: bool | None = None):
    """The TrainingArguments the runner built, as a DPOConfig with the spec's dpo section.

    `precompute_ref`: compute the reference log-probabilities once before training. That costs one forward pass
    per pair up front and saves one per pair per epoch, so it pays only when pairs are seen more than once; the
    caller decides (None: off).
    """
    from transformers import TrainingArguments
    from trl import DPOConfig

    names = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    kwargs = {name: getattr(args, name) for name in names}
    # TRL turns checkpointing off around the reference forward and back on with these kwargs; reentrant
    # checkpointing with frozen embeddings would silently stop the adapter's gradients.
    no_reentrant = {"use_reentrant": False}
    if "activation_checkpointing_kwargs" in names:
        # transformers >= 5.2x renamed gradient_checkpointing*; the old names only mirror the new ones.
        kwargs.update(gradient_checkpointing=None, gradient_checkpointing_kwargs=None,
                      activation_checkpointing_kwargs=no_reentrant)
    else:
        kwargs["gradient_checkpointing_kwargs"] = no_reentrant
    kwargs.update(
        beta=spec.dpo.beta,
        loss_type=[spec.dpo.loss_type],
        # Lengths are enforced per part in PreferenceTrainer._prepare_dataset; TRL's own cut (keep the start of
        # prompt + answer) would then never fire, and its filter would drop long prompts before they are cut.
        max_length=None,
        precompute_ref_log_probs=bool(precompute_ref),
        # label_smoothing is the flip probability of the robust loss, and must be > 0 for exo_pair.
        label_smoothing={"robust": 0.1, "exo_pair": 1e-3}.get(spec.dpo.loss_type, 0.0),
        # The dataset keeps its `where` column for messages; the collator reads only the token columns.
        remove_unused_columns=False,
    )
    return DPOConfig(**kwargs)


# ------------------------------------------------------------------ examples -> TRL rows, lengths

def trl_rows(examples) -> list[dict]:
    """TRL's conversational preference rows; the chat template is applied by TRL."""
    rows = []
    for ex in examples:
        rows.append({"prompt": [dict(m) for m in ex["prompt"]],
                     "chosen": [dict(m) for m in ex["chosen"]],
                     "rejected": [dict(m) for m in ex["rejected"]],
                     "where": str(ex.get("where", ""))})
    return rows


def _ids(tokenizer, messages, add_generation_prompt=False) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        add_generation_prompt=add_generation_prompt)
    return list(out["input_ids"])


def tokenize_pair(tokenizer, example) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) token ids exactly as TRL 1.16 splits them: the answer starts where the
    rendered prompt and the rendered prompt + answer stop agreeing."""
    prompt = _ids(tokenizer, example["prompt"], add_generation_prompt=True)
    chosen = _ids(tokenizer, list(example["prompt"]) + list(example["chosen"]))
    rejected = _ids(tokenizer, list(example["prompt"]) + list(example["rejected"]))
    n = min(common_prefix(prompt, chosen), common_prefix(prompt, rejected))
    return prompt[:n], chosen[n:], rejected[n:]


@dataclasses.dataclass(frozen=True)
class Limits:
    prompt: int      # dpo.max_prompt_length
    completion: int  # dpo.max_completion_length
    total: int       # data.max_length

    @classmethod
    def of(cls, spec) -> Limits:
        return cls(spec.dpo.max_prompt_length, spec.dpo.max_completion_length, spec.data.max_length)

    def fit(self, n_prompt: int, n_chosen: int, n_rejected: int) -> tuple[int, int, int]:
        """Lengths the three parts are cut to."""
        p = min(n_prompt, self.prompt)
        longest = min(max(n_chosen, n_rejected), self.completion)
        if p + longest > self.total:
            # Both long: the prompt keeps at most half of the total, the answers the rest.
            p = min(p, max(self.total - longest, self.total // 2))
        room = max(self.total - p, 1)
        return p, min(n_chosen, self.completion, room), min(n_rejected, self.completion, room)

    def describe(self) -> str:
        return (f"dpo.max_prompt_length {self.prompt}, dpo.max_completion_length {self.completion}, "
                f"data.max_length {self.total}")


def cut_row(row: dict, limits: Limits) -> dict:
    """Apply the limits to one tokenized row: the prompt keeps its end, the answers their start."""
    p, c, r = limits.fit(len(row["prompt_ids"]), len(row["chosen_ids"]), len(row["rejected_ids"]))
    cut = (p, c, r) != (len(row["prompt_ids"]), len(row["chosen_ids"]), len(row["rejected_ids"]))
    return {"prompt_ids": row["prompt_ids"][len(row["prompt_ids"]) - p:], "chosen_ids": row["chosen_ids"][:c],
            "rejected_ids": row["rejected_ids"][:r], "_cut": cut}


def preference_lengths(spec, tokenizer, examples) -> str:
    """One line for `tune-wizard validate`: pairs, token lengths, and how many the limits would cut."""
    limits = Limits.of(spec)
    prompts, chosens, rejecteds, cut_where = [], [], [], []
    over_p = over_c = over_r = 0
    for ex in examples:
        p, c, r = tokenize_pair(tokenizer, ex)
        prompts.append(len(p)), chosens.append(len(c)), rejecteds.append(len(r))
        over_p += len(p) > limits.prompt
        over_c += len(c) > limits.completion
        over_r += len(r) > limits.completion
        if limits.fit(len(p), len(c), len(r)) != (len(p), len(c), len(r)):
            cut_where.append(str(ex.get("where", "?")))
    if not examples:
        return "preference pairs: 0"

    def stat(xs):
        return f"{mean(xs):.0f}/{max(xs)}"

    action = "dropped" if spec.data.overflow == "drop" else "cut"
    text = (f"preference pairs: {len(examples)}; tokens mean/longest: prompt {stat(prompts)}, chosen "
            f"{stat(chosens)}, rejected {stat(rejecteds)}; over dpo.max_prompt_length {limits.prompt}: "
            f"{over_p} prompts; over dpo.max_completion_length {limits.completion}: {over_c} chosen, "
            f"{over_r} rejected; pairs {action} to fit (incl. data.max_length {limits.total}): {len(cut_where)}")
    if cut_where:
        text += f" (e.g. {', '.join(cut_where[:_SHOWN])})"
    return text


# ------------------------------------------------------------------ the trainer

def _trainer_class():
    from trl import DPOTrainer

    class PreferenceTrainer(DPOTrainer):
        """DPOTrainer with per-part length limits and a single saved adapter."""

        def __init__(self, *a, limits: Limits, overflow: str = "truncate", events=None, **kw):
            self._limits, self._overflow = limits, overflow
            self._events = events or (lambda text, level="info": None)
            super().__init__(*a, **kw)

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if "prompt_ids" not in dataset.column_names:
                return dataset
            dataset = dataset.map(cut_row, fn_kwargs={"limits": self._limits},
                                  desc=f"Applying length limits to {dataset_name} pairs")
            flags = dataset["_cut"]
            n_cut = sum(flags)
            if n_cut:
                where = [w for w, f in zip(dataset["where"], flags) if f][:_SHOWN]
                if self._overflow == "drop":
                    dataset = dataset.filter(lambda row: not row["_cut"])
                    verb = "dropped (data.overflow: drop)"
                else:
                    verb = "cut to fit (prompts keep their end, answers their start)"
                self._events(f"{n_cut} of {len(flags)} {dataset_name} pairs {verb} at {self._limits.describe()} "
                             f"(e.g. {', '.join(where)}); raise the limits or set data.overflow", "warning")
            dataset = dataset.remove_columns("_cut")
            if len(dataset) == 0:
                raise DataError(f"no {dataset_name} pairs left: every pair is longer than {self._limits.describe()}",
                                hint="raise the limits, or use data.overflow: truncate")
            return dataset

        def _save(self, output_dir=None, state_dict=None):
            model = self.accelerator.unwrap_model(self.model)
            if REF_ADAPTER not in getattr(model, "peft_config", {}):
                return super()._save(output_dir, state_dict)
            # The frozen reference copy would otherwise be saved beside the trained adapter (in ref/).
            output_dir = output_dir or self.args.output_dir
            os.makedirs(output_dir, exist_ok=True)
            model.save_pretrained(output_dir, selected_adapters=[TRAINED_ADAPTER])
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    return PreferenceTrainer


def prepare_data(spec, tokenizer, train_examples, eval_examples, events):
    """TRL tokenizes the pairs itself (in build_trainer); nothing to count for the batching plan."""
    return train_examples, eval_examples, None


def build_trainer(spec, model, tokenizer, train_examples, eval_examples, args, callbacks, events, plan=None,
                  attention: str = "sdpa"):
    from datasets import Dataset

    check_trl()
    if not train_examples:
        raise DataError("no preference pairs to train on", hint="check data.train")
    # Pairs seen more than once: reference log-probs computed once up front beat one reference forward per step.
    precompute = pair_passes(spec, len(train_examples), args.gradient_accumulation_steps) >= 1.5
    config = dpo_config(spec, args, precompute_ref=precompute)
    adapter_dtypes = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    if precompute:
        events(f"computing reference log-probabilities for {len(train_examples) + len(eval_examples or [])} "
               "pairs once, before training (each pair is seen more than once)")
    trainer = _trainer_class()(
        model=model, ref_model=None, args=config,
        train_dataset=Dataset.from_list(trl_rows(train_examples)),
        eval_dataset=Dataset.from_list(trl_rows(eval_examples)) if eval_examples else None,
        processing_class=tokenizer, callbacks=callbacks,
        limits=Limits.of(spec), overflow=spec.data.overflow, events=events)

    peft_model = trainer.accelerator.unwrap_model(trainer.model)
    if spec.model.adapter:
        if REF_ADAPTER not in peft_model.peft_config:
            raise RuntimeError("TRL did not add the reference copy of the SFT adapter; this version of TRL "
                               "is not supported for DPO from an SFT run")
        events(f"reference: the SFT policy (base + adapter of {spec.model.adapter}, frozen); "
               "training continues that adapter")
    else:
        if REF_ADAPTER in peft_model.peft_config:
            peft_model.delete_adapter(REF_ADAPTER)
            peft_model.set_adapter(TRAINED_ADAPTER)
        events("reference: the base model (the adapter switched off)")
    for name, p in peft_model.named_parameters():
        want = adapter_dtypes.get(name)
        if want is not None and p.dtype != want:
            p.data = p.data.to(want)
    events(f"DPO: loss {spec.dpo.loss_type}, beta {spec.dpo.beta}, {Limits.of(spec).describe()}")
    return trainer
