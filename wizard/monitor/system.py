"""CPU and RAM figures (psutil) for the panel shown when there is no NVIDIA GPU to watch."""
from __future__ import annotations

import os
import time

import psutil

_proc = None


def sample_system() -> dict:
    """One CPU/RAM sample. cpu_percent is the system-wide use since the previous call (the first call
    measures over 0.1 s)."""
    global _proc
    primed = _proc is not None  # the first reading needs a short interval to mean anything
    if _proc is None:
        _proc = psutil.Process(os.getpid())
    vm = psutil.virtual_memory()
    try:
        rss = _proc.memory_info().rss / 2**30
    except psutil.Error:
        rss = None
    return {
        "time": round(time.time(), 3),
        "cpu_percent": psutil.cpu_percent(interval=None if primed else 0.1),
        "cpu_count": psutil.cpu_count() or 1,
        "ram_used_gb": round((vm.total - vm.available) / 2**30, 2),
        "ram_total_gb": round(vm.total / 2**30, 2),
        "rss_gb": round(rss, 2) if rss is not None else None,
    }
