"""GPU sampling through NVML: a daemon thread that appends one row a second to the run folder's gpu.jsonl.

Row format (the contract `tune-wizard watch` and the dashboard read):
    {"time": 1717000000.123, "gpus": [{"index", "name", "util", "mem_used_gb", "mem_total_gb", "temp_c",
     "power_w", "power_limit_w", "sm_clock_mhz", "throttle": [reason, ...]}]}
A field a GPU does not report is null. Without NVML, `start_sampler` returns a NullSampler that writes one
row {"time", "gpus": [], "unavailable": why} so a watcher can show why there is no GPU panel.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from wizard import hardware
from wizard import run_folder as rf

HISTORY = 240  # samples kept in memory for sparklines (4 minutes at 1 s)

# NVML clock-event bits -> short names shown in the panel ("why is the SM clock low").
_THROTTLE_BITS = (
    (0x1, "idle"), (0x2, "app_clocks"), (0x4, "sw_power_cap"), (0x8, "hw_slowdown"), (0x10, "sync_boost"),
    (0x20, "sw_thermal"), (0x40, "hw_thermal"), (0x80, "hw_power_brake"), (0x100, "display_clocks"),
)


def throttle_names(mask: int) -> list[str]:
    return [name for bit, name in _THROTTLE_BITS if mask & bit]


class _Nvml:
    """The few NVML calls the panel needs; every per-field failure becomes None (not every GPU reports all)."""

    def __init__(self):
        self.nv = nv = hardware.nvml_init()
        try:
            every = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
            # NVML lists every GPU of the host; on a shared machine the panel shows the ones this run trains on.
            picked = hardware.nvml_visible(nv, every)
            handles = [(i, every[i]) for i in (range(len(every)) if picked is None else picked)]
            self.handles = handles
            self.names = {i: self._call(nv.nvmlDeviceGetName, h) for i, h in handles}
            self.totals = {i: self._mem_total(h) for i, h in handles}
            self.limits = {i: self._power_limit(h) for i, h in handles}
        except Exception:
            hardware.nvml_shutdown(nv)
            raise

    @staticmethod
    def _call(fn, *args):
        try:
            value = fn(*args)
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends: field unknown
            return None
        return value.decode() if isinstance(value, bytes) else value

    def _mem_total(self, h) -> float | None:
        info = self._call(self.nv.nvmlDeviceGetMemoryInfo, h)
        return round(info.total / 2**30, 2) if info is not None else None

    def _power_limit(self, h) -> float | None:
        mw = self._call(self.nv.nvmlDeviceGetEnforcedPowerLimit, h)
        return round(mw / 1000.0, 1) if mw is not None else None

    def sample(self) -> list[dict]:
        nv, call = self.nv, self._call
        out = []
        for i, h in self.handles:
            util = call(nv.nvmlDeviceGetUtilizationRates, h)
            mem = call(nv.nvmlDeviceGetMemoryInfo, h)
            power = call(nv.nvmlDeviceGetPowerUsage, h)
            events = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
                nv.nvmlDeviceGetCurrentClocksThrottleReasons
            mask = call(events, h)
            out.append({
                "index": i,
                "name": self.names.get(i),
                "util": util.gpu if util is not None else None,
                "mem_used_gb": round(mem.used / 2**30, 2) if mem is not None else None,
                "mem_total_gb": self.totals.get(i),
                "temp_c": call(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
                "power_w": round(power / 1000.0, 1) if power is not None else None,
                "power_limit_w": self.limits.get(i),
                "sm_clock_mhz": call(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
                "throttle": throttle_names(mask) if mask is not None else [],
            })
        return out

    def shutdown(self) -> None:
        hardware.nvml_shutdown(self.nv)


def probe() -> tuple[_Nvml | None, str | None]:
    """An initialised NVML reader, or None and one line saying why not."""
    try:
        reader = _Nvml()
    except hardware.NvmlUnavailable as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a query that failed after NVML started
        return None, f"NVML unavailable: {str(exc) or type(exc).__name__}"
    if not reader.handles:
        reader.shutdown()
        vis = os.environ.get("CUDA_VISIBLE_DEVICES")
        return None, ("NVML sees no GPU" + (f" in CUDA_VISIBLE_DEVICES={vis!r}" if vis is not None else ""))
    return reader, None


class Sampler:
    """Samples every `period` seconds on a daemon thread; appends to gpu.jsonl and keeps recent history."""

    unavailable_reason: str | None = None

    def __init__(self, reader: _Nvml, path: Path | None, period: float = 1.0):
        self.reader = reader
        self.path = path
        self.period = period
        self.history: deque = deque(maxlen=HISTORY)
        self.listeners: list[Callable[[dict], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tune-wizard-nvml", daemon=True)
        self.errors = 0

    def start(self) -> Sampler:
        self.sample_once()  # the first frame already has a GPU row
        self._thread.start()
        return self

    def add_listener(self, fn: Callable[[dict], None]) -> None:
        with self._lock:
            self.listeners.append(fn)
            rows = list(self.history)
        for row in rows:  # a late listener still gets the history for its sparklines
            fn(row)

    def sample_once(self) -> dict | None:
        try:
            row = {"time": round(time.time(), 3), "gpus": self.reader.sample()}
        except Exception:  # noqa: BLE001 - a GPU fell off the bus; keep training, keep trying
            self.errors += 1
            return None
        if self.path is not None:
            try:
                rf.append_jsonl(self.path, row)
            except OSError:
                self.errors += 1
        with self._lock:
            self.history.append(row)
            listeners = list(self.listeners)
        for fn in listeners:
            fn(row)
        return row

    def _loop(self) -> None:
        next_at = time.monotonic() + self.period
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self.sample_once()
            next_at = max(next_at + self.period, time.monotonic())

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.reader.shutdown()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


class NullSampler:
    """What start_sampler gives without NVML: same interface, samples nothing, says why."""

    history: deque

    def __init__(self, reason: str, path: Path | None = None):
        self.unavailable_reason = reason
        self.history = deque()
        self.running = False
        if path is not None:
            try:
                rf.append_jsonl(path, {"time": round(time.time(), 3), "gpus": [], "unavailable": reason})
            except OSError:
                pass

    def add_listener(self, fn) -> None: ...

    def sample_once(self) -> None:
        return None

    def stop(self) -> None: ...


def start_sampler(run_dir: str | Path | None, period: float = 1.0):
    """Start sampling into RUN_DIR/gpu.jsonl (None: memory only). Always returns an object with .stop(),
    .history, .add_listener(fn) and .unavailable_reason (None when sampling).

    The caller owns what it gets: one per run, stopped by whoever started it. A dashboard is handed the run's
    sampler (LiveReporter(sampler=...)) rather than starting a second thread on the same gpu.jsonl.
    """
    path = Path(run_dir) / rf.GPU if run_dir is not None else None
    reader, reason = probe()
    return Sampler(reader, path, period).start() if reader is not None else NullSampler(reason, path)
