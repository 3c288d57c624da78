"""Piped output (wizard.ui.make_console when stdout is not a terminal): wide, and without the spaces Rich pads
each line with."""
from __future__ import annotations

import io

from rich.table import Table

from wizard.ui import PIPED_WIDTH, make_console


def test_piped_output_has_no_trailing_spaces(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    console = make_console()
    t = Table(title="a title")
    t.add_column("x")
    t.add_row("short")
    console.print(t)
    console.print("line one", end="")
    console.print(" continued")
    text = out.getvalue()
    assert console.width == PIPED_WIDTH and "a title" in text and "line one continued\n" in text
    assert all(line == line.rstrip(" ") for line in text.splitlines()), text
