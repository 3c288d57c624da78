"""The review before anything is written (as `npm init` and `gh pr create` end): after the summary and the
estimates, Write / Edit a section / Cancel. A spec the memory estimate says does not fit offers the one change
that fits first, and "Write" becomes "Write it anyway".

Edit a section asks that section's questions again, offering the answers they had (Enter keeps each), and
comes back here. Cancel writes nothing.
"""
from __future__ import annotations

from typing import Any

from rich.text import Text

from wizard.init import answers as A
from wizard.init import questions as Qs


class Cancelled(Exception):
    """Cancel at the review: nothing is written."""


# The sections a person can go back to: the steps of the question loop (not the summary and the start).
SECTION_STEPS = sorted({q.step for q in Qs.QUESTIONS} - {8, 9})


def choices(fit: Any, a: dict, ctx) -> tuple[list[tuple[str, str]], dict | None]:
    """[(value, title)] in the order shown, and the answers the estimate's fitting change stands for.
    Values: apply, write, cancel, edit:<step>."""
    out: list[tuple[str, str]] = []
    changed = A.change_answers(fit.change, a, ctx) if fit.fits is False else None
    if changed:
        out.append(("apply", f"Apply the suggested change: {fit.change}"))
    if fit.fits is False:
        # The hyperparameters first: that is where a run that does not fit is usually changed.
        out += [("edit:6", "Edit the hyperparameters"),
                ("write", "Write it anyway (training will likely run out of memory)")]
    else:
        out.append(("write", "Write the spec"))
    out += [(f"edit:{step}", f"Edit: {Qs.STEPS[step].lower()}") for step in SECTION_STEPS
            if f"edit:{step}" not in dict(out) and any(q.step == step and q.when(a, ctx) for q in Qs.QUESTIONS)]
    out.append(("cancel", "Cancel (nothing is written)"))
    return out, changed


def ask(flow, fit: Any, a: dict) -> tuple[str, dict | None]:
    """The person's pick: (value, the answers of the suggested change when that is the pick)."""
    import questionary

    opts, changed = choices(fit, a, flow.ctx)
    if changed:
        flow.console.print(f"  [dim]Apply: [bold]{fit.change}[/bold], the one change that alone fits by the "
                           "estimate.[/]")
    if fit.fits is False:
        message = f"The estimate says this does not fit ({fit.total_gb:.1f} of {fit.avail:.1f} GiB). What now?"
    else:
        message = "Write this spec?"
    flow.console.print("  [dim]Edit asks that section's questions again, offering the answers above; then this "
                       "review again.[/]")
    from wizard.init.keys import backable

    pick = backable(questionary.select(message, choices=[questionary.Choice(t, value=v) for v, t in opts],
                                       default=opts[0][0], use_jk_keys=True, instruction="(↑/↓, Enter)"),
                    enabled=False).unsafe_ask()
    if pick == "cancel":
        raise Cancelled("cancelled at the review; nothing written")
    return pick, (changed if pick == "apply" else None)


def edit_section(flow, a: dict, step: int) -> None:
    """The questions of one section asked again, each offering the answer it has now."""
    for q in Qs.QUESTIONS:
        if q.step != step or q.tuning:
            continue
        if q.id in a:
            flow.prev[q.id] = a.pop(q.id)
        flow.preset.pop(q.id, None)  # ask the person this time, not the file again
        flow.filled.discard(q.id)


def duration_line(flow, spec, a: dict) -> Any:
    """How long the run would take on this machine (wizard.estimate.duration, rough), shown with the memory
    estimate; a warning when it is hours. Returns the Duration, or None when it can't be told."""
    from wizard.estimate.duration import TYPICAL_ROW_TOKENS, estimate_duration

    shape = flow.ctx.shape(Qs.model_id(a, flow.ctx))
    sched = Qs.tuning_schedule(a, flow.ctx)
    if shape is None or sched is None:
        why = "the model's size is unknown" if shape is None else "the dataset's size is known only once it is " \
            "downloaded (a hub id's #N tells it)"
        flow.console.print(f"  [dim]Time: not estimated: {why}[/]")
        return None
    per_update = (sched.dataset_tokens / sched.per_epoch if sched.dataset_tokens else
                  min(TYPICAL_ROW_TOKENS, spec.data.max_length) * sched.rows / sched.per_epoch)
    ckpt = spec.train.gradient_checkpointing == "on" or (spec.train.gradient_checkpointing == "auto"
                                                          and bool(sched.plan.checkpointing))
    d = estimate_duration(shape.params, per_update * sched.total, sched.total * sched.plan.grad_accum,
                          method=spec.method, task=spec.task, checkpointing=ckpt, hardware=flow.ctx.hardware)
    flow.console.print(Text.assemble(("  Time: ", "bold"), f"{d.describe()} for ~{sched.total:,} updates; rough: "
                                     "scaled from measured runs (wizard/estimate/duration.py)"))
    if d.long:
        flow.console.print("  [yellow]warning: that is hours on this machine: fewer rows (a hub id's #N), fewer "
                           "epochs or max_steps, a smaller model, or a GPU would make it minutes[/]")
    return d
