"""Datasets: read local files and hub datasets, detect the format, check every row, normalise to chat
examples. The engine calls `wizard.data.load.load_examples`."""
from wizard.data.load import DataReport, SourceReport, load_examples

__all__ = ["DataReport", "SourceReport", "load_examples"]
