"""Hardware detection on this machine; which GPUs CUDA_VISIBLE_DEVICES names (indices, UUIDs, MIG instances);
the precision rule. (The hub checks are in test_hubs.py.)"""
from __future__ import annotations

import re

import pytest

from wizard import hardware
from wizard.hardware import (
    PRECISIONS,
    GpuInfo,
    Hardware,
    NvmlUnavailable,
    cuda_visible,
    describe,
    detect,
    free_disk_gb,
    pick_precision,
    torch_dtype,
)

try:
    hardware.nvml_shutdown(hardware.nvml_init())
    NVML = True
except NvmlUnavailable:
    NVML = False


def test_detect_reports_this_machine(tmp_path):
    hw = detect(tmp_path)
    assert hw.cpu_count >= 1
    assert hw.ram_total_gb >= hw.ram_available_gb > 0
    assert hw.disk_free_gb and hw.disk_free_gb > 0
    import torch

    assert hw.cuda_available == torch.cuda.is_available()
    assert len(hw.usable_gpus) == (torch.cuda.device_count() if hw.cuda_available else 0)
    for g in hw.gpus:
        assert g.total_gb >= g.free_gb >= 0 and g.name
        assert g.bf16 == (g.compute_capability[0] >= 8)
    lines = describe(hw)
    assert any(line.startswith("CPU") for line in lines)
    assert any("RAM" in line for line in lines)
    if not hw.gpus:
        assert "CPU only" in lines[0]


def test_describe_a_gpu_machine():
    hw = Hardware(gpus=[GpuInfo(0, "NVIDIA A10", 22.1, 21.5, True, (8, 6)),
                        GpuInfo(1, "Tesla T4", 14.6, 14.6, False, (7, 5))],
                  cpu_count=16, ram_total_gb=125.7, ram_available_gb=120.0, cpu_bf16=False, cuda_available=True,
                  torch_cuda="12.8", driver="570.86", disk_free_gb=12.0)
    lines = describe(hw)
    assert lines[0] == "GPU 0: NVIDIA A10, 22.1 GiB (21.5 free), bf16, compute 8.6"
    assert "no bf16 (fp16)" in lines[1]
    assert not any("CPU only" in line for line in lines)
    assert any("16 cores" in line for line in lines)
    assert any("12.0 GiB free" in line and "7B" in line for line in lines)
    assert any("driver 570.86" in line for line in lines)
    hw.gpus[0].usable = hw.gpus[1].usable = False
    assert "no GPU torch can use" in "\n".join(describe(hw))


def test_free_disk_of_a_path_not_created_yet(tmp_path):
    assert free_disk_gb(tmp_path / "runs" / "not-yet") == free_disk_gb(tmp_path)


# GPU UUIDs as NVML reports them; the second GPU is split into two MIG instances.
A = "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"
B = "GPU-1c0d5e7a-0000-4abc-9def-0123456789ab"
B_MIG = ("MIG-5f1c8f3e-aaaa-5b7d-9a61-0123456789ab", "MIG-77aa0c41-bbbb-5e21-8d3e-0123456789ab")
DEVICES = [[A], [B, *B_MIG]]


def test_cuda_visible_devices_by_index_and_by_uuid():
    assert cuda_visible(DEVICES, None) is None                   # unset: every GPU
    assert cuda_visible(DEVICES, "") == []                       # set but empty: none
    assert cuda_visible(DEVICES, "1") == [1]
    assert cuda_visible(DEVICES, "1,0") == [1, 0]                # CUDA numbers them in the variable's order
    assert cuda_visible(DEVICES, " 0 , 1 ") == [0, 1]
    assert cuda_visible(DEVICES, "0,0,1") == [0, 1]
    assert cuda_visible(DEVICES, f"{B}") == [1]
    assert cuda_visible(DEVICES, f"{B},{A}") == [1, 0]
    assert cuda_visible(DEVICES, "GPU-8932f937") == [0]          # a unique start of a UUID is enough
    assert cuda_visible(DEVICES, "GPU-") == []                   # ... an ambiguous one names nothing
    assert cuda_visible(DEVICES, "0,7,1") == [0]                 # the list ends at the first unknown device
    assert cuda_visible(DEVICES, "GPU-ffff,1") == []
    assert cuda_visible(DEVICES, "-1") == []


def test_cuda_visible_devices_by_mig_instance():
    assert cuda_visible(DEVICES, B_MIG[1]) == [1]                # a MIG instance samples as its parent GPU
    assert cuda_visible(DEVICES, B_MIG[0][:12]) == [1]
    assert cuda_visible(DEVICES, f"MIG-{B}/1/0") == [1]          # the older MIG-GPU-<uuid>/<gi>/<ci> form
    assert cuda_visible(DEVICES, f"{A},MIG-{B}/2/0") == [0, 1]


@pytest.mark.skipif(not NVML, reason="needs an NVIDIA driver")
def test_real_nvml_devices_by_index_and_uuid(monkeypatch):
    with hardware.nvml() as nv:
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        uuids = [str(nv.nvmlDeviceGetUUID(h), "ascii") if isinstance(nv.nvmlDeviceGetUUID(h), bytes)
                 else nv.nvmlDeviceGetUUID(h) for h in handles]
        last = len(handles) - 1
        for value in (str(last), uuids[last], uuids[last][:13]):
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
            assert hardware.nvml_visible(nv, handles) == [last], value
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
        assert hardware.nvml_visible(nv, handles) is None


def test_nvml_unavailable_says_why():
    try:
        with hardware.nvml() as nv:
            assert nv.nvmlDeviceGetCount() >= 0
    except NvmlUnavailable as exc:
        assert not NVML
        # nvidia-ml-py is a dependency, so what is missing is NVML itself: said as the library says it
        assert re.fullmatch(r"NVML unavailable: \S.*", str(exc)), str(exc)


def test_precision_rule():
    assert pick_precision("auto", gpu=True, gpu_bf16=True) == "bf16"
    assert pick_precision("auto", gpu=True, gpu_bf16=False) == "fp16"
    assert pick_precision("fp16", gpu=True, gpu_bf16=True) == "fp16"
    for requested in ("auto", "bf16", "fp16", "fp32"):
        assert pick_precision(requested, gpu=False, gpu_bf16=False) == "fp32"  # the CPU trains in fp32
    import torch

    assert [torch_dtype(p) for p in PRECISIONS] == [torch.bfloat16, torch.float16, torch.float32]


def test_gpu_memory_cap_reads_the_run_flags_variable(monkeypatch):
    from wizard.hardware import GPU_MEMORY_ENV, gib_argument, gpu_memory_cap

    monkeypatch.setenv(GPU_MEMORY_ENV, "24")
    assert gpu_memory_cap() == 24.0
    monkeypatch.setenv(GPU_MEMORY_ENV, "lots")
    assert gpu_memory_cap() is None
    monkeypatch.delenv(GPU_MEMORY_ENV)
    assert gpu_memory_cap() is None
    assert gib_argument("7.5") == 7.5
    with pytest.raises(Exception, match="more than 0 GiB"):
        gib_argument("0")
