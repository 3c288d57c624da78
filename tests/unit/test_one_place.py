"""Tables that must name the same things as the spec field they serve. Where a lower layer cannot read the
spec (hardware sits below it), or a table adds facts of its own (optimizer states, format converters), the
names are kept in line here: adding a choice to the spec without the table (or the reverse) fails."""
from __future__ import annotations

from wizard.data.formats import NAMED, SFT
from wizard.estimate.memory import STATES
from wizard.hardware import PRECISIONS
from wizard.spec import fields


def test_precisions_are_the_spec_precisions():
    assert ("auto", *PRECISIONS) == fields.choices("train.precision")


def test_every_optimizer_has_a_state_count_and_no_other():
    assert set(STATES) == set(fields.choices("train.optimizer"))


def test_every_named_format_is_a_spec_format():
    named = {name for task in NAMED.values() for name in task} | set(SFT)
    assert named == set(fields.choices("data.format")) - {"auto"}


def test_the_data_tables_cover_every_task():
    assert set(NAMED) == set(fields.choices("task"))
