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

from wizard import run_folder as rf

HISTORY = 240  # samples kept in memory for sparklines (4 minutes at 1 s)

# NVML clock-event bits -> short names shown in the panel ("why is the SM clock low").
_THROTTLE_BITS = (
    (0x1, "idle"), (0x2, "app_clocks"), (0x4, "sw_power_cap"), (0x8, "hw_slowdown"), (0x10, "sync_boost"),
    (0x20, "sw_thermal"), (0x40, "hw_thermal"), (0x80, "hw_power_brake"), (0x100, "display_clocks"),
)


def throttle_names(mask: int) -> list[str]:
    return [name for bit, name in _THROTTLE_BITS if mask & bit]


def _visible_filter() -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as a list of tokens (indices or GPU-UUIDs), or None when unset.

    NVML ignores that variable and lists every GPU of the host; on a shared machine the panel should show
    the GPUs this run trains on, not the neighbours'.
    """
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    return [t.strip() for t in raw.split(",") if t.strip()]


class _Nvml:
    """The few NVML calls the panel needs; every per-field failure becomes None (not every GPU reports all)."""

    def __init__(self):
        import pynvml  # nvidia-ml-py

        self.nv = pynvml
        pynvml.nvmlInit()
        try:
            handles = [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())]
            wanted = _visible_filter()
            if wanted is not None:
                handles = [(i, h) for i, h in handles if self._matches(i, h, wanted)]
            self.handles = handles
            self.names = {i: self._call(pynvml.nvmlDeviceGetName, h) for i, h in handles}
            self.totals = {i: self._mem_total(h) for i, h in handles}
            self.limits = {i: self._power_limit(h) for i, h in handles}
        except Exception:
            pynvml.nvmlShutdown()
            raise

    def _matches(self, index: int, handle, wanted: list[str]) -> bool:
        uuid = self._call(self.nv.nvmlDeviceGetUUID, handle) or ""
        return any(t == str(index) or (t.startswith("GPU-") and uuid.startswith(t)) for t in wanted)

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
        try:
            self.nv.nvmlShutdown()
        except Exception:  # noqa: BLE001 - already shut down
            pass


def probe() -> tuple[_Nvml | None, str | None]:
    """An initialised NVML reader, or None and one line saying why not."""
    try:
        import pynvml  # noqa: F401
    except ImportError:
        return None, "nvidia-ml-py (pynvml) is not installed"
    try:
        reader = _Nvml()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        text = str(exc) or type(exc).__name__
        if "Not Found" in text or "LibraryNotFound" in type(exc).__name__:
            text += " (no NVIDIA driver on this machine)"
        return None, f"NVML unavailable: {text}"
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

    def latest(self) -> dict | None:
        return self.history[-1] if self.history else None

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

    def latest(self) -> None:
        return None

    def sample_once(self) -> None:
        return None

    def stop(self) -> None: ...


class _Shared:
    """One sampler per run folder: the engine (non-TTY) and the LiveReporter may both ask for one."""

    def __init__(self, sampler, key):
        self._sampler = sampler
        self._key = key
        self._stopped = False

    def __getattr__(self, name):
        return getattr(self._sampler, name)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with _registry_lock:
            entry = _registry.get(self._key)
            if entry is None:
                return
            entry[1] -= 1
            last = entry[1] <= 0
            if last:
                del _registry[self._key]
        if last:
            self._sampler.stop()


_registry: dict = {}
_registry_lock = threading.Lock()


def start_sampler(run_dir: str | Path | None, period: float = 1.0):
    """Start sampling into RUN_DIR/gpu.jsonl (None: memory only). Always returns an object with .stop(),
    .history, .latest(), .add_listener(fn) and .unavailable_reason (None when sampling)."""
    path = Path(run_dir) / rf.GPU if run_dir is not None else None
    if path is None:
        reader, reason = probe()
        return Sampler(reader, None, period).start() if reader is not None else NullSampler(reason)
    key = str(path.resolve())
    with _registry_lock:  # held while probing so two callers never start two threads on one file
        if key not in _registry:
            reader, reason = probe()
            sampler = Sampler(reader, path, period).start() if reader is not None else NullSampler(reason, path)
            _registry[key] = [sampler, 0]
        _registry[key][1] += 1
        return _Shared(_registry[key][0], key)
