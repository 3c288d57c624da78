"""The facts wizard.spec.warnings' rules read, found for a spec: the model's context length and linear layer
names (its config, through the memory estimate's shape: no weights), whether there is a CUDA GPU, the rows,
and the model a DPO start-from run was trained on. The wizard and `tune-wizard validate` both ask here, so
they warn about the same things.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from wizard.catalog import lookup
from wizard.run_folder import ADAPTER, SPEC
from wizard.spec.warnings import Facts


def same_form(model_id: str | None) -> str | None:
    """A model id in the form two ids are compared in: a catalog alias (for its hub ids too), a resolved
    folder, else the id as given."""
    if not model_id:
        return None
    entry = lookup(str(model_id))
    if entry is not None:
        return entry.alias
    p = Path(str(model_id)).expanduser()
    return str(p.resolve()) if p.exists() else str(model_id)


def adapter_base(adapter: str | None) -> str | None:
    """The model an adapter was trained on: its run folder's spec (the id the person gave), else the
    adapter's own adapter_config.json (which may hold a cache path); None when neither says."""
    if not adapter:
        return None
    folder = Path(adapter).expanduser()
    for spec_file in (folder / SPEC, folder.parent / SPEC):
        try:
            model = (yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}).get("model") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if isinstance(model, dict) and model.get("id"):
            return same_form(str(model["id"]))
    for cfg in (folder / "adapter_config.json", folder / ADAPTER / "adapter_config.json"):
        try:
            base = json.loads(cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")
        except (OSError, ValueError, AttributeError):
            continue
        if base:
            return same_form(str(base))
    return None


def facts_for(spec, *, shape: Any = None, cuda: bool | None = None, rows: int | None = None) -> Facts:
    """Facts for `spec`: SHAPE (wizard.estimate.Shape) of its model when known, CUDA, the training ROWS
    before the eval split when known."""
    from wizard.data.load import eval_count
    from wizard.estimate.shape import projections

    modules = context = None
    if shape is not None:
        try:
            names = frozenset(projections(shape))
            # The layer names are known for the families whose own default targets are among them (llama,
            # qwen, mistral, phi3, ...); for the others (gpt2's c_attn) they would be a guess.
            if set(shape.targets) <= names:
                modules = names | {"lm_head"}
            context = int(shape.context) or None
        except Exception:  # noqa: BLE001 - an odd shape: those rules say nothing
            modules = context = None
    return Facts(context=context, modules=modules, cuda=cuda, rows=rows,
                 eval_rows=eval_count(rows, spec.data.eval_split) if rows is not None else None,
                 model=same_form(spec.model.id), adapter_base=adapter_base(spec.model.adapter))


def ask_about(flow, warnings: list, a: dict) -> bool:
    """The wizard's side: each warning shown; at a terminal, Keep it (Enter) or Change it, which asks that
    question again offering the value it had. Returns whether an answer is to be asked again."""
    from wizard.init import questions as Qs

    again = False
    for w in warnings:
        if str(w) in flow.kept:
            continue
        flow.console.print(f"  [yellow]warning:[/] {w.field}: {w.text}; [dim]{w.fix}[/]")
        qid = Qs.question_for(w.field)
        if not flow.interactive or flow.use_defaults or qid is None:
            flow.kept.add(str(w))
            continue
        import questionary

        from wizard.init.keys import backable

        pick = backable(questionary.select(f"{Qs.BY_ID[qid].prompt}: keep it?", choices=[
            questionary.Choice("Keep it", value="keep"),
            questionary.Choice(f"Change it ({w.fix})", value="change")], default="keep", use_jk_keys=True,
            instruction="(↑/↓, Enter)"), enabled=False).unsafe_ask()
        if pick == "keep":
            flow.kept.add(str(w))
            continue
        flow.ask_again(qid, a)
        again = True
    return again
