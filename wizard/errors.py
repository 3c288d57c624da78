"""Errors the user can fix. The CLI maps them to exit code 2 and prints every problem, no traceback."""
from __future__ import annotations


class UserError(Exception):
    """Bad input: a spec, a dataset, an argument, a model that is not there. Exit code 2."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, hint: str = ""):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.hint = hint
        super().__init__("\n".join(self.problems))


class SpecError(UserError):
    """The run spec does not validate."""


class DataError(UserError):
    """A dataset cannot be read or has malformed rows (each problem names file and line)."""


class ModelError(UserError):
    """The model cannot be found or loaded (no network, wrong id, not a model folder)."""
