"""doctor's package rows, in-process: pure-Python packages read from their metadata (no import), bitsandbytes
imported (a broken CUDA set-up shows only then), and its CPU kernel-fetch warning kept out of the output."""
from __future__ import annotations

import logging
import sys
from importlib import metadata

from wizard.commands.doctor import IMPORTED, _package
from wizard.ui import quiet_libraries


def test_packages_are_read_from_metadata_without_importing_them(monkeypatch):
    monkeypatch.delitem(sys.modules, "gguf", raising=False)
    assert _package("gguf") == ("gguf", True, metadata.version("gguf"))
    assert "gguf" not in sys.modules  # not imported to be checked
    assert _package("no_such_package_here") == ("no_such_package_here", False, "not installed")
    assert IMPORTED == ("bitsandbytes",)


def test_the_bitsandbytes_cpu_kernel_warning_is_kept_quiet(caplog):
    quiet_libraries()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward from "
                                                                   "kernels-community: ...")
    assert "kernels-community" not in caplog.text
