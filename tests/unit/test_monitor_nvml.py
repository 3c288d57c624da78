"""The NVML sampler: real NVML where there is a GPU; the no-NVML fallback (this CI machine) otherwise."""
from __future__ import annotations

import json
import re
import time

import pytest

from tests.helpers import FixedGpuReader
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
        # nvidia-ml-py is a dependency: no driver (in NVML's words), or a driver that sees no GPU here
        assert re.fullmatch(r"NVML unavailable: \S.*|NVML sees no GPU.*", s.unavailable_reason), s.unavailable_reason
        assert not s.history and not s.running
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


def test_sampler_thread_writes_rows_feeds_listeners_and_stops(tmp_path):
    reader = FixedGpuReader()
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
    assert len(seen) == n and s.history[-1] == rows[-1]


def test_throttle_reason_names():
    assert throttle_names(0) == []
    assert throttle_names(0x4 | 0x40) == ["sw_power_cap", "hw_thermal"]
    assert throttle_names(0x1) == ["idle"]


@pytest.mark.skipif(not HAS_NVML, reason="needs an NVIDIA GPU and driver")
def test_the_panel_samples_only_the_gpus_cuda_visible_devices_names(monkeypatch):
    reader, _ = nvml.probe()
    every = [i for i, _ in reader.handles]
    uuid = reader.nv.nvmlDeviceGetUUID(reader.handles[-1][1])
    reader.shutdown()
    uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
    for value in (str(every[-1]), uuid):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        reader, why = nvml.probe()
        try:
            assert why is None and [i for i, _ in reader.handles] == [every[-1]]
            assert [g["index"] for g in reader.sample()] == [every[-1]]  # NVML's index, as nvidia-smi shows it
        finally:
            reader.shutdown()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    reader, why = nvml.probe()
    assert reader is None and "NVML sees no GPU in CUDA_VISIBLE_DEVICES=''" in why
