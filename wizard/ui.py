"""The Rich console the commands print with."""
from __future__ import annotations

import io
import sys

from rich.console import Console

# Rich assumes 80 columns when output is piped or logged, which cuts model ids and paths in tables
# (and breaks `| grep`); a log file has no width, so use a wide one.
PIPED_WIDTH = 200


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(highlight=False, stderr=stderr)
    return Console(highlight=False, width=PIPED_WIDTH, file=TrimmedLines(stream))


class TrimmedLines(io.TextIOBase):
    """A piped stream without the spaces Rich pads each line with up to PIPED_WIDTH: logs, `| diff` and
    `| grep 'x$'` see the text only. A line is written once its newline comes (or at a flush)."""

    def __init__(self, stream):
        self.stream = stream
        self.pending = ""

    def write(self, s: str) -> int:
        *lines, self.pending = (self.pending + s).split("\n")
        if lines:
            self.stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(s)

    def flush(self) -> None:
        if self.pending:
            self.stream.write(self.pending)
            self.pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


def quiet_libraries() -> None:
    """No per-file progress bars from the hub and transformers' weight loader: they drown the dashboard and
    fill logs with carriage returns. Set before those libraries are imported."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    # bitsandbytes on a CPU with AVX512-BF16 tries a faster 4-bit kernel from the Hub (kernels-community) at
    # import and, without the optional `kernels` package or a network, warns; it then uses its own CPU code,
    # which is what runs anyway. The line reads as an error in doctor and at the start of every run.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    import warnings

    # transformers 5 renamed gradient checkpointing to activation checkpointing and warns on every use of
    # the old name, including its own internal calls and peft's; the old name is the one all supported
    # versions share.
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)
