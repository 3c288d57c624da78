"""The way back: Esc at any question of the wizard (and a "← back" line in its lists) answers BACK, and the
flow asks the previous question again, offering the answer it had.

questionary has no back key of its own; each of its prompts is a prompt_toolkit Application, so one more key
binding, merged over its own, is all it takes, the same for lists, yes/no and text prompts. Esc is what a
person tries first and types nothing into a text answer (an empty answer can be a real one: "no mirror").
"""
from __future__ import annotations

from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
from prompt_toolkit.keys import Keys


class _Back:
    """The answer of a question the person stepped back from."""

    def __repr__(self) -> str:
        return "BACK"


BACK = _Back()
BACK_TITLE = "← back"
HINT = "Esc: back"


def back_bindings(enabled: bool) -> KeyBindings:
    kb = KeyBindings()

    # eager: Esc alone answers at once, instead of waiting to be the start of an Alt-key combination (which a
    # list would otherwise take: Esc then Enter read as Alt+Enter answered a select with nothing).
    @kb.add(Keys.Escape, eager=True)
    def _back(event) -> None:
        if enabled:
            event.app.exit(result=BACK)

    return kb


def backable(question, enabled: bool = True):
    """A questionary Question whose Esc answers BACK (with `enabled`; else Esc does nothing)."""
    app = question.application
    kb = back_bindings(enabled)
    app.key_bindings = merge_key_bindings([app.key_bindings, kb]) if app.key_bindings else kb
    return question
