"""DashboardState: everything a frame shows, fed either by Reporter hooks (live) or by a run folder's
files (`tune-wizard watch`). Panels read it and nothing else, so a frame is a pure function of it.

Time is part of the state (`now`), set by whoever asks for a frame, so that tests render the same
frame every time.
"""
from __future__ import annotations

import math
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from wizard import run_folder as rf
from wizard.monitor import charts
from wizard.monitor.charts import finite
from wizard.monitor.reporting import RunInfo

HISTORY = 240          # sparkline history (samples)
EVENTS = 200           # log-tail lines kept
# `stopped`: the process is gone without writing its end (run_folder.read_state)
DONE = ("finished", "failed", "interrupted", "stopped")


@dataclass
class Event:
    time: float
    level: str
    text: str


def to_epoch(value) -> float | None:
    """state.json times may be epoch seconds or ISO strings; None when neither."""
    if finite(value):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class DashboardState:
    def __init__(self, source: str = "live"):
        self.source = source                    # "live" (in the training process) or "watch"
        self.name = self.model = self.task = self.method = self.device = self.run_dir = ""
        self.adapter_dir = ""
        self.total_steps = 0
        self.trainable_params = self.total_params = 0
        self.status = "starting"
        self.message = ""
        self.step = 0
        self.epoch: float | None = None
        self.started_at: float | None = None
        self.updated_at: float | None = None
        self.now = time.time()
        self.steps: list[float] = []
        self.losses: list[float | None] = []
        self.evals: list[tuple[float, float]] = []
        self.last: dict = {}                    # latest training row
        self.row_time: float | None = None   # wall time of that row
        self.peak_mem_gb: float | None = None
        self.rewards: dict = {}                 # latest rewards/* values (DPO)
        self.margins: deque = deque(maxlen=HISTORY)
        self.accuracies: deque = deque(maxlen=HISTORY)
        self.events: deque = deque(maxlen=EVENTS)
        self.gpus: list[dict] = []
        self.gpu_time: float | None = None
        self.gpu_hist: dict[int, dict[str, deque]] = {}
        self.gpu_reason: str | None = None
        self.system: dict | None = None
        self.cpu_hist: deque = deque(maxlen=HISTORY)
        self.ram_hist: deque = deque(maxlen=HISTORY)
        self.final: dict | None = None
        self._ema = charts.EmaTracker(-1.0)     # replaced with the right weight by the first loss
        self.smooth: list = []
        self.buckets = charts.Decimator()
        self.version = 0                        # bumped by every metrics row: keys the chart cache
        self.n_bad = 0                          # non-finite training losses
        self.cache: dict = {}

    # -- feeding -------------------------------------------------------------------------------------
    def start(self, info: RunInfo, now: float | None = None) -> None:
        self.run_dir, self.name, self.model = str(info.run_dir), info.name, info.model
        self.task, self.method, self.device = info.task, info.method, info.device
        self.total_steps = info.total_steps or self.total_steps
        self.trainable_params, self.total_params = info.trainable_params, info.total_params
        self.status = "running"
        self.started_at = self.started_at or (now or time.time())

    def add_row(self, row: dict, now: float | None = None) -> None:
        self.version += 1
        step = row.get("step")
        if finite(step):
            self.step = max(self.step, int(step))
        if finite(row.get("epoch")):
            self.epoch = float(row["epoch"])
        if "eval_loss" in row:
            if finite(row.get("eval_loss")) and finite(step):
                self.evals.append((float(step), float(row["eval_loss"])))
            return
        if finite(step) and "loss" in row:
            good = finite(row["loss"])
            self._add_loss(float(step), float(row["loss"]) if good else math.nan, good)
        self.last = dict(row)
        self.row_time = to_epoch(row.get("time")) or now or time.time()
        if finite(row.get("peak_mem_gb")):
            self.peak_mem_gb = max(self.peak_mem_gb or 0.0, float(row["peak_mem_gb"]))
        rewards = {k: v for k, v in row.items() if k.startswith("rewards/")}
        if rewards:
            self.rewards = rewards
            self.margins.append(rewards.get("rewards/margins"))
            self.accuracies.append(rewards.get("rewards/accuracies"))
        if self.status == "starting":
            self.status = "running"

    def add_event(self, text: str, level: str = "info", t: float | None = None) -> None:
        for line in str(text).splitlines() or [""]:
            self.events.append(Event(t or time.time(), level or "info", line))

    def add_gpu_sample(self, row: dict) -> None:
        gpus = row.get("gpus") or []
        if not gpus:
            if row.get("unavailable") and not self.gpus:
                self.gpu_reason = str(row["unavailable"])
            return
        self.gpu_reason = None
        self.gpus = gpus
        self.gpu_time = to_epoch(row.get("time"))
        for g in gpus:
            hist = self.gpu_hist.setdefault(g.get("index", 0), {"util": deque(maxlen=HISTORY),
                                                                 "mem": deque(maxlen=HISTORY)})
            hist["util"].append(g.get("util"))
            used, total = g.get("mem_used_gb"), g.get("mem_total_gb")
            hist["mem"].append(100.0 * used / total if finite(used) and finite(total) and total else None)

    def add_system_sample(self, sample: dict) -> None:
        self.system = sample
        self.cpu_hist.append(sample.get("cpu_percent"))
        used, total = sample.get("ram_used_gb"), sample.get("ram_total_gb")
        self.ram_hist.append(100.0 * used / total if finite(used) and finite(total) and total else None)

    def finish(self, final: dict) -> None:
        self.final = dict(final)
        self.status = final.get("status") or self.status
        self.message = final.get("message") or self.message
        self.adapter_dir = final.get("adapter_dir") or self.adapter_dir
        self.run_dir = final.get("run_dir") or self.run_dir

    def apply_state_file(self, d: dict) -> None:
        for key in ("name", "model", "task", "method", "device", "run_dir", "adapter_dir", "message"):
            if d.get(key):
                setattr(self, key, str(d[key]))
        if finite(d.get("step")):
            self.step = max(self.step, int(d["step"]))
        if finite(d.get("total_steps")):
            self.total_steps = int(d["total_steps"])
        self.started_at = to_epoch(d.get("started_at")) or self.started_at
        self.updated_at = to_epoch(d.get("updated_at")) or self.updated_at
        status = d.get("status")
        if status in DONE:
            self.finish(d)
        elif status:
            self.status = status

    # -- derived figures (what panels print) ---------------------------------------------------------
    def cached(self, key: tuple, build):
        """build() once per metrics version: frames between logging steps reuse the chart."""
        full = (self.version, *key)
        if full not in self.cache:
            if len(self.cache) > 16:
                self.cache.clear()
            self.cache[full] = build()
        return self.cache[full]

    def _add_loss(self, step: float, loss: float, good: bool) -> None:
        """Keep the EMA and the chart's buckets current in O(1); only when the EMA weight changes
        (log2(n) times in a run) are both rebuilt from the whole series."""
        self.steps.append(step)
        self.losses.append(loss)
        self.n_bad += not good
        weight = charts.smoothing_weight(len(self.losses) - self.n_bad)
        if weight != self._ema.weight:
            self._ema = charts.EmaTracker(weight)
            self.smooth = [self._ema.push(v) for v in self.losses]
            self.buckets = charts.Decimator.of(self.steps, self.losses, self.smooth)
            return
        m = self._ema.push(loss)
        self.smooth.append(m)
        self.buckets.add(step, loss, m)

    def smoothed(self) -> tuple[float, list]:
        """(EMA weight, EMA of the training losses, None where a loss was not finite)."""
        return self._ema.weight, self.smooth

    @property
    def done(self) -> bool:
        return self.status in DONE or self.final is not None

    def elapsed(self) -> float | None:
        if self.final and finite(self.final.get("elapsed_s")):
            return float(self.final["elapsed_s"])
        running = not self.done
        if running and self.source == "live" and self.started_at:
            return max(0.0, self.now - self.started_at)
        last = self.last.get("elapsed_s")
        if finite(last):
            extra = (self.now - self.row_time) if running and self.row_time else 0.0
            return float(last) + max(0.0, min(extra, 3600.0))
        if running and self.started_at:
            return max(0.0, self.now - self.started_at)
        return None

    def eta(self) -> float | None:
        if self.done:
            return 0.0 if self.status == "finished" else None
        eta = self.last.get("eta_s")
        if not finite(eta):
            return None
        since = (self.now - self.row_time) if self.row_time else 0.0
        return max(0.0, float(eta) - max(0.0, since))

    def final_loss(self) -> float | None:
        if self.final and finite(self.final.get("final_loss")):
            return float(self.final["final_loss"])
        return next((v for v in reversed(self.losses) if finite(v)), None)

    def best_eval(self) -> tuple[float, float] | None:
        """(loss, step) of the best evaluation so far."""
        if self.final and finite(self.final.get("best_eval_loss")):  # the engine's word is final
            best = float(self.final["best_eval_loss"])
            step = next((s for s, v in self.evals if math.isclose(v, best, rel_tol=1e-6)), math.nan)
            return best, step
        if not self.evals:
            return None
        step, loss = min(self.evals, key=lambda e: e[1])
        return loss, step

    def peak_memory(self) -> float | None:
        if self.final and finite(self.final.get("peak_mem_gb")):
            return float(self.final["peak_mem_gb"])
        return self.peak_mem_gb

    def stale_s(self) -> float | None:
        """Seconds since the watched run last wrote anything, when it says it is still running."""
        if self.source != "watch" or self.done:
            return None
        seen = [t for t in (self.updated_at, self.row_time, self.gpu_time) if t]
        return max(0.0, self.now - max(seen)) if seen else None


# -- following a run folder -----------------------------------------------------------------------------
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:[,.]\d+)?\s+"
                       r"(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(?:(\S+?):\s)?(.*)$")
_STEP_LINE = re.compile(r"^(step \d+/\S+\s|\[eval\] step )")  # per-step lines: the chart shows those


class _Tail:
    """New complete lines of a growing file, from a byte offset; a half-written last line waits."""

    def __init__(self, path: Path, start_back: int | None = None):
        self.path = path
        self.offset = 0
        self.start_back = start_back  # on first read, skip to this many bytes before the end
        self.buf = b""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, 2)
                if size < self.offset:  # truncated or replaced: read again from the start
                    self.offset, self.buf = 0, b""
                skip_partial = False
                if self.start_back is not None and self.offset == 0 and size > self.start_back:
                    self.offset, skip_partial = size - self.start_back, True
                self.start_back = None
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.buf + data
        *complete, self.buf = data.split(b"\n")
        if skip_partial and complete:
            complete = complete[1:]
        return [c.decode("utf-8", "replace") for c in complete if c.strip()]


def _jsonl(lines: list[str]) -> list[dict]:
    import json

    out = []
    for line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def parse_log_line(line: str) -> tuple[float | None, str, str] | None:
    """(time, level, text) of a train.log line; None for per-step lines."""
    m = _LOG_LINE.match(line)
    if m:
        stamp, level, _logger, text = m.groups()
        try:
            t = time.mktime(time.strptime(stamp.replace("T", " "), "%Y-%m-%d %H:%M:%S"))
        except ValueError:
            t = None
        level = {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error"}.get(level, "info")
    else:
        t, text = None, line
        low = line.lower()
        level = "warning" if low.startswith("warning") else "error" if low.startswith("error") else ""
    if _STEP_LINE.match(text):
        return None
    return t, level, text


class RunFolderFollower:
    """Rebuilds a DashboardState from a run folder and keeps it current on each poll()."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.state = DashboardState(source="watch")
        self.state.run_dir = str(self.run_dir)
        self.metrics = _Tail(self.run_dir / rf.METRICS)
        self.gpu = _Tail(self.run_dir / rf.GPU, start_back=512 * 1024)   # ~minutes of samples are enough
        self.log = _Tail(self.run_dir / rf.LOG, start_back=64 * 1024)
        self._spec_read = False
        self._last_level = "info"
        self.new_rows: list[dict] = []
        self.new_events: list[tuple[str, str]] = []

    def poll(self, now: float | None = None) -> DashboardState:
        st = self.state
        st.now = now or time.time()
        if not self._spec_read:
            self._spec_read = True
            self._read_spec()
        data = rf.read_state(self.run_dir)
        if data:
            st.apply_state_file(data)
        self.new_rows = _jsonl(self.metrics.lines())  # what arrived in this poll (for plain following)
        self.new_events = []
        for row in self.new_rows:
            st.add_row(row, now=st.now)
        for row in _jsonl(self.gpu.lines()):
            st.add_gpu_sample(row)
        for line in self.log.lines():
            parsed = parse_log_line(line)
            if parsed is None:
                continue
            t, level, text = parsed
            level = level or self._last_level  # a traceback's lines keep their first line's level
            self._last_level = level
            st.add_event(text, level, t or st.now)
            self.new_events.append((level, text))
        if not st.gpus:
            from wizard.monitor.system import sample_system

            sample = sample_system()
            sample["rss_gb"] = None  # the watcher's own memory would mislead
            st.add_system_sample(sample)
            if st.gpu_reason is None:
                st.gpu_reason = "no GPU samples in gpu.jsonl (the run has no NVML sampler)"
        return st

    def _read_spec(self) -> None:
        """Name, model, task, method before state.json exists (a run that is still loading)."""
        try:
            import yaml

            spec = yaml.safe_load((self.run_dir / rf.SPEC).read_text(encoding="utf-8")) or {}
        except Exception:  # noqa: BLE001 - the spec is a nicety here; state.json is the source
            return
        st = self.state
        model = spec.get("model")
        st.name = st.name or str(spec.get("name") or self.run_dir.name)
        st.model = st.model or str(model.get("id") if isinstance(model, dict) else model or "")
        st.task = st.task or str(spec.get("task") or "")
        st.method = st.method or str(spec.get("method") or "")
