"""doctor's package rows, in-process: packages read from their metadata (no import), bitsandbytes imported where
there is a GPU (a broken CUDA set-up shows only then), and its CPU kernel-fetch warning kept out of the output."""
from __future__ import annotations

import logging
import sys
from importlib import metadata

from wizard.commands.doctor import IMPORTED_ON_GPU, _package
from wizard.ui import quiet_libraries


def test_packages_are_read_from_metadata_without_importing_them(monkeypatch):
    monkeypatch.delitem(sys.modules, "gguf", raising=False)
    assert _package("gguf") == ("gguf", True, metadata.version("gguf"))
    assert "gguf" not in sys.modules  # not imported to be checked
    assert _package("no_such_package_here") == ("no_such_package_here", False, "not installed")
    assert IMPORTED_ON_GPU == ("bitsandbytes",)


def test_bitsandbytes_is_imported_only_to_check_a_gpu_set_up(monkeypatch):
    monkeypatch.delitem(sys.modules, "bitsandbytes", raising=False)
    version = metadata.version("bitsandbytes")
    assert _package("bitsandbytes") == ("bitsandbytes", True, version)  # a machine without a GPU
    assert "bitsandbytes" not in sys.modules
    assert _package("bitsandbytes", imported=True) == ("bitsandbytes", True, version)  # with one: the import works
    assert "bitsandbytes" in sys.modules


def test_the_bitsandbytes_cpu_kernel_warning_is_kept_quiet(caplog):
    quiet_libraries()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward from "
                                                                   "kernels-community: ...")
    assert "kernels-community" not in caplog.text
