"""The NVML sampler: real NVML where there is a GPU; the no-NVML fallback (this CI machine) otherwise."""
from __future__ import annotations

import json
import time

import pytest

from wizard.monitor import nvml
from wizard.monitor.nvml import Sampler, start_sampler, throttle_names

_reader, REASON = nvml.probe()
if _reader is not None:
    _reader.shutdown()
HAS_NVML = _reader is not None


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.skipif(HAS_NVML, reason="this machine has NVML; the fallback is for machines without it")
def test_without_nvml_start_sampler_is_a_noop_that_says_why(tmp_path):
    s = start_sampler(tmp_path)
    try:
        assert s.unavailable_reason and s.unavailable_reason == REASON
        assert "NVML" in s.unavailable_reason or "nvidia-ml-py" in s.unavailable_reason
        assert s.latest() is None and not s.running
        rows = _rows(tmp_path / "gpu.jsonl")  # one row tells a watcher why there is no GPU panel
        assert len(rows) == 1 and rows[0]["gpus"] == [] and rows[0]["unavailable"] == s.unavailable_reason
    finally:
        s.stop()
        s.stop()  # stopping twice is harmless


@pytest.mark.skipif(not HAS_NVML, reason="needs an NVIDIA GPU and driver")
def test_with_nvml_rows_have_the_contract_keys(tmp_path):
    s = start_sampler(tmp_path, period=0.2)
    try:
        time.sleep(0.7)
    finally:
        s.stop()
    rows = _rows(tmp_path / "gpu.jsonl")
    assert len(rows) >= 3 and s.unavailable_reason is None
    g = rows[-1]["gpus"][0]
    assert set(g) == {"index", "name", "util", "mem_used_gb", "mem_total_gb", "temp_c", "power_w",
                      "power_limit_w", "sm_clock_mhz", "throttle"}
    assert g["mem_total_gb"] > 1 and isinstance(g["throttle"], list)


def test_one_sampler_per_run_folder_is_shared(tmp_path):
    a = start_sampler(tmp_path)
    b = start_sampler(tmp_path)
    assert a._sampler is b._sampler
    a.stop()
    assert (tmp_path / "gpu.jsonl").exists()
    b.stop()
    c = start_sampler(tmp_path)  # after the last stop a new one starts
    assert c._sampler is not a._sampler
    c.stop()
    if not HAS_NVML:
        assert len(_rows(tmp_path / "gpu.jsonl")) == 2  # one "unavailable" row per real start


class _FixedReader:
    """A stand-in for the NVML reader so the sampling thread itself runs on a machine without GPUs."""

    def __init__(self):
        self.calls = 0
        self.shut = False

    def sample(self):
        self.calls += 1
        return [{"index": 0, "name": "Test GPU", "util": self.calls, "mem_used_gb": 1.0, "mem_total_gb": 8.0,
                 "temp_c": 40, "power_w": 50.0, "power_limit_w": 100.0, "sm_clock_mhz": 1000, "throttle": []}]

    def shutdown(self):
        self.shut = True


def test_sampler_thread_writes_rows_feeds_listeners_and_stops(tmp_path):
    reader = _FixedReader()
    seen = []
    s = Sampler(reader, tmp_path / "gpu.jsonl", period=0.05).start()
    s.add_listener(seen.append)  # gets the history so far, then each new row
    time.sleep(0.4)
    s.stop()
    n = reader.calls
    time.sleep(0.15)
    assert reader.calls == n and reader.shut and not s.running  # really stopped
    rows = _rows(tmp_path / "gpu.jsonl")
    assert len(rows) == n >= 4
    assert [r["gpus"][0]["util"] for r in rows] == list(range(1, n + 1))
    assert len(seen) == n and s.latest() == rows[-1]


def test_throttle_reason_names():
    assert throttle_names(0) == []
    assert throttle_names(0x4 | 0x40) == ["sw_power_cap", "hw_thermal"]
    assert throttle_names(0x1) == ["idle"]
