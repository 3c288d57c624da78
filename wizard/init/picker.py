"""A long select list that filters as you type and never answers with a heading.

questionary's own select (2.x) filters on every title, headings included, points at the first line of the
filtered list (which may be a heading) and, when nothing matches, shows the whole list again with the
pointer on its first heading: Enter then answers with the heading's text ("── DeepSeek"). Here the filter
matches the choices only (a group's heading is shown above its matches, never pointed at), the pointer
always lands on a choice, Enter on anything else does nothing, and a filter that matches nothing offers
itself as the answer when `typed` accepts it (a hub id such as Qwen/Qwen2-7B), else says that nothing
matches.
"""
from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.keys import Keys
from questionary import Choice, Question, Separator
from questionary.prompts.common import InquirerControl, create_inquirer_layout
from questionary.styles import merge_styles_default

# What the filter reads: printable characters without the control whitespace (Enter must stay Enter).
FILTER_KEYS = string.ascii_letters + string.digits + string.punctuation + " "


@dataclass(frozen=True)
class Typed:
    """The answer when the filter text itself is taken (it matched no choice)."""

    text: str


def _plain(title: Any) -> str:
    return "".join(t[1] for t in title) if isinstance(title, list) else str(title)


class FilterControl(InquirerControl):
    def __init__(self, choices: list, default: Any, typed: Callable[[str], str | None]):
        self.typed = typed  # text -> the title of the "use it" line, or None when the text can't be an answer
        super().__init__(choices, default=default, initial_choice=default, use_indicator=False,
                         show_description=False)

    @staticmethod
    def selectable(c: Choice) -> bool:
        return not isinstance(c, Separator) and not c.disabled

    @property
    def filtered_choices(self) -> list:
        text = (self.search_filter or "").strip()
        if not text:
            return self.choices
        low, out, heading = text.lower(), [], None
        for c in self.choices:
            if not self.selectable(c):
                heading = c
                continue
            if low in _plain(c.title).lower():
                if heading is not None:
                    out.append(heading)
                    heading = None
                out.append(c)
        self.found_in_search = bool(out)
        if out:
            return out
        title = self.typed(text)
        if title:
            return [Choice(title, value=Typed(text))]
        return [Choice(f"nothing matches '{text}'", disabled="Backspace changes the filter")]

    def get_pointed_at(self) -> Choice:
        shown = self.filtered_choices
        return shown[min(self.pointed_at, len(shown) - 1)]

    # questionary reads these from the unfiltered list; the pointer indexes the filtered one.
    def is_selection_a_separator(self) -> bool:
        return isinstance(self.get_pointed_at(), Separator)

    def is_selection_disabled(self):
        return self.get_pointed_at().disabled

    def add_search_character(self, char) -> None:
        super().add_search_character(char)
        shown = self.filtered_choices
        self.pointed_at = next((i for i, c in enumerate(shown) if self.selectable(c)), 0)

    def move(self, step: int) -> None:
        """To the next choice up or down, over headings; stays put when there is none."""
        n = self.choice_count
        for _ in range(n):
            self.pointed_at = (self.pointed_at + step) % n
            if self.is_selection_valid():
                return


def filter_select(message: str, choices: list, default: Any = None, *, typed: Callable[[str], str | None],
                  instruction: str = "(↑/↓, type to filter, Enter)", **kwargs: Any) -> Question:
    """A questionary Question: the chosen value, or Typed(text) for the filter text taken as the answer."""
    ic = FilterControl(choices, default, typed)

    def prompt_tokens():
        tokens = [("class:qmark", "?"), ("class:question", f" {message} ")]
        if ic.is_answered:
            tokens.append(("class:answer", _plain(ic.get_pointed_at().title).strip()))
        else:
            tokens.append(("class:instruction", instruction))
        return tokens

    layout = create_inquirer_layout(ic, prompt_tokens, **kwargs)
    kb = KeyBindings()

    @kb.add(Keys.ControlQ, eager=True)
    @kb.add(Keys.ControlC, eager=True)
    def _abort(event):
        event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    def _filter(event):
        ic.add_search_character(event.key_sequence[0].key)

    for ch in FILTER_KEYS:
        kb.add(ch, eager=True)(_filter)
    kb.add(Keys.Backspace, eager=True)(_filter)
    kb.add(Keys.Down, eager=True)(lambda e: ic.move(1))
    kb.add(Keys.Up, eager=True)(lambda e: ic.move(-1))
    kb.add(Keys.ControlN, eager=True)(lambda e: ic.move(1))
    kb.add(Keys.ControlP, eager=True)(lambda e: ic.move(-1))

    @kb.add(Keys.ControlM, eager=True)
    def _enter(event):
        if not ic.is_selection_valid():  # a heading, or "nothing matches": there is no answer to take
            return
        ic.is_answered = True
        event.app.exit(result=ic.get_pointed_at().value)

    @kb.add(Keys.Any)
    def _other(event):
        """Nothing else types into the list."""

    app_kwargs = {k: v for k, v in kwargs.items() if k in ("input", "output")}
    return Question(Application(layout=layout, key_bindings=kb, style=merge_styles_default([None]), **app_kwargs))
