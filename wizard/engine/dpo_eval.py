"""Did DPO work? Policy-minus-reference log-probability margins on held-out pairs, and greedy answers.

    python -m wizard.engine.dpo_eval runs/<dpo-run> recipes/data/preference_heldout.jsonl [--answers 3]

For each pair, margin = [log p(chosen) - log p(rejected)] under the policy minus the same under the reference:
how much more the trained model prefers the chosen answer than it did before training. Its mean is DPO's
implicit reward margin (divided by beta), and `accuracy` is the share of pairs with a positive margin (TRL's
rewards/accuracies, on pairs the run never trained on). The reference is what DPO trained against: the base
model (adapter off), or the SFT policy for a run started from one.
"""
from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterable
from pathlib import Path

import torch

from wizard.engine.dpo import REF_ADAPTER, tokenize_pair


def _pairs(pairs) -> list[dict]:
    """Examples as load_examples returns them, or a file of preference rows (any supported format)."""
    if isinstance(pairs, (str, Path)):
        from wizard.data.load import load_examples
        from wizard.spec import DataSpec

        pairs, _, _ = load_examples(DataSpec(train=[str(pairs)]), task="dpo")
    return list(pairs)


def load_run(run_dir: str | Path):
    """(model, tokenizer) of a DPO run: its adapter on the base, plus the reference adapter when the run
    started from an SFT run (loaded under the name TRL used, so `reference()` finds it)."""
    from wizard import run_folder as rf
    from wizard.engine.loader import adapter_dir
    from wizard.inference.loading import load_for_inference
    from wizard.spec import load

    run_dir = Path(run_dir)
    loaded = load_for_inference(str(run_dir), dtype=torch.float32)
    spec = load(run_dir / rf.SPEC)
    if spec.model.adapter:
        loaded.model.load_adapter(str(adapter_dir(spec.model.adapter)), adapter_name=REF_ADAPTER)
        loaded.model.set_adapter("default")
    return loaded.model, loaded.tokenizer


def reference(model):
    """Context in which `model` is the reference: the "ref" adapter if it has one, else adapters off."""
    if REF_ADAPTER in getattr(model, "peft_config", {}):
        @contextlib.contextmanager
        def use_ref():
            previous = model.active_adapter
            model.set_adapter(REF_ADAPTER)
            try:
                yield
            finally:
                model.set_adapter(previous)
        return use_ref()
    return model.disable_adapter()


@torch.no_grad()
def sequence_logps(model, tokenizer, pairs: list[dict], batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of the chosen and of the rejected answers (answer tokens only)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    chosen, rejected = [], []
    for start in range(0, len(pairs), batch_size):
        seqs, masks = [], []
        for ex in pairs[start:start + batch_size]:
            p, c, r = tokenize_pair(tokenizer, ex)
            seqs += [p + c, p + r]
            masks += [[0] * len(p) + [1] * len(c), [0] * len(p) + [1] * len(r)]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
        attn = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        mask = torch.tensor([m + [0] * (width - len(m)) for m in masks], device=device, dtype=torch.float32)
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        token_logps = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        total = (token_logps * mask[:, 1:]).sum(-1).cpu()
        chosen.append(total[0::2])
        rejected.append(total[1::2])
    return torch.cat(chosen), torch.cat(rejected)


def heldout_margins(run_or_model, pairs, tokenizer=None, batch_size: int = 8) -> dict:
    """Margins of the policy over its reference on `pairs`.

    `run_or_model`: a DPO run folder, or a PEFT model (with `tokenizer`) whose active adapter is the policy.
    `pairs`: preference examples ({"prompt", "chosen", "rejected"} message lists) or a path to a file of them.
    Returns mean_margin, accuracy (share of pairs whose margin is > 0), policy_margin and reference_margin (mean
    log p(chosen) - log p(rejected) after and before training) and n.
    """
    pairs = _pairs(pairs)
    if isinstance(run_or_model, (str, Path)):
        model, tokenizer = load_run(run_or_model)
    else:
        model = run_or_model
        if tokenizer is None:
            raise ValueError("heldout_margins(model, ...) needs the tokenizer")
    was_training = model.training
    model.eval()
    try:
        pol_c, pol_r = sequence_logps(model, tokenizer, pairs, batch_size)
        with reference(model):
            ref_c, ref_r = sequence_logps(model, tokenizer, pairs, batch_size)
    finally:
        model.train(was_training)
    margins = (pol_c - pol_r) - (ref_c - ref_r)
    return {"mean_margin": margins.mean().item(), "accuracy": (margins > 0).float().mean().item(),
            "policy_margin": (pol_c - pol_r).mean().item(), "reference_margin": (ref_c - ref_r).mean().item(),
            "n": len(pairs)}


def greedy_answers(model, tokenizer, prompts: Iterable[list[dict]], max_new_tokens: int = 48,
                   use_reference: bool = False) -> list[str]:
    """Greedy answers of the policy (or of the reference) to prompts given as message lists, generated as chat
    and serve generate them: each stops at any end-of-turn token, not only the tokenizer's eos."""
    from wizard.inference.generation import generate_batch
    from wizard.inference.loading import Loaded

    with reference(model) if use_reference else contextlib.nullcontext():
        return generate_batch(Loaded(model, tokenizer), list(prompts), max_new_tokens)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wizard.engine.dpo_eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a finished DPO run folder")
    ap.add_argument("pairs", help="held-out preference pairs (a JSONL file)")
    ap.add_argument("--answers", type=int, default=3, help="greedy answers to show, before and after (0: none)")
    args = ap.parse_args(argv)
    model, tokenizer = load_run(args.run)
    pairs = _pairs(args.pairs)
    m = heldout_margins(model, pairs, tokenizer)
    print(f"held-out pairs: {m['n']}")
    print(f"log p(chosen) - log p(rejected): reference {m['reference_margin']:.2f} -> policy {m['policy_margin']:.2f}"
          f" (margin {m['mean_margin']:+.2f})")
    print(f"reward accuracy (policy prefers chosen more than the reference did): {m['accuracy']:.2f}")
    prompts = [p["prompt"] for p in pairs[:args.answers]]
    if prompts:
        before = greedy_answers(model, tokenizer, prompts, use_reference=True)
        after = greedy_answers(model, tokenizer, prompts)
        for p, b, a in zip(prompts, before, after):
            print(f"\nQ: {p[-1]['content']}\n  before: {b}\n  after:  {a}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
