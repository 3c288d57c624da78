"""What this machine has for training: GPUs (name, memory, bf16), CPU cores and RAM, free disk, and the
precision a run trains in there. Every probe is guarded and quick: the wizard's welcome panel and
`tune-wizard doctor` call it on machines with no GPU, no NVML or a CPU build of torch.

NVML is opened here and nowhere else (the dashboard's sampler too), and CUDA_VISIBLE_DEVICES is read here:
NVML lists every GPU of the host, torch only the ones that variable names.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

GIB = 2**30
PRECISIONS = ("bf16", "fp16", "fp32")


@dataclass
class GpuInfo:
    index: int
    name: str
    total_gb: float
    free_gb: float
    bf16: bool
    compute_capability: tuple[int, int]
    # False when NVML sees the card but this torch cannot use it (a CPU build, a driver mismatch).
    usable: bool = True


@dataclass
class Hardware:
    gpus: list[GpuInfo]
    cpu_count: int
    ram_total_gb: float
    ram_available_gb: float
    cpu_bf16: bool                      # the CPU has native bf16 (AVX512-BF16 / AMX); fp32 is used otherwise
    cuda_available: bool                # torch can run on a GPU here
    torch_cuda: str | None = None    # the CUDA version torch was built with
    driver: str | None = None
    disk_free_gb: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def usable_gpus(self) -> list[GpuInfo]:
        return [g for g in self.gpus if g.usable]


# `tune-wizard run --gpu-memory GB`: the most GPU memory a run may use; the probe reports no more free than that.
GPU_MEMORY_ENV = "TUNE_WIZARD_GPU_MEMORY_GB"


def gib_argument(text: str) -> float:
    """argparse type of --gpu-memory (estimate, run): a positive number of GiB."""
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GiB, e.g. 24, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 GiB, got {text}")
    return v


def gpu_memory_cap() -> float | None:
    """The GiB set by --gpu-memory (GPU_MEMORY_ENV), or None."""
    try:
        cap = float(os.environ.get(GPU_MEMORY_ENV, "") or 0)
    except ValueError:
        return None
    return cap if cap > 0 else None


def detect(path: str | os.PathLike = ".") -> Hardware:
    """Probe the machine. Never raises for a missing GPU, NVML or torch; what could not be told is in notes."""
    hw = _detect(path)
    cap = gpu_memory_cap()
    if cap is not None:
        for g in hw.gpus:
            g.free_gb = min(g.free_gb, cap)
        hw.notes.append(f"GPU memory capped at {cap:g} GiB ({GPU_MEMORY_ENV})")
    return hw


def _detect(path: str | os.PathLike) -> Hardware:
    notes: list[str] = []
    gpus, cuda, torch_cuda = _torch_gpus(notes)
    driver = None
    seen = _nvml_gpus(notes)
    if seen is not None:
        driver, nv = seen
        if gpus:
            # NVML's free memory needs no CUDA context; match cards by name, in order.
            for g, n in zip(gpus, nv):
                if n.name == g.name:
                    g.free_gb = n.free_gb
        elif nv:
            gpus = nv
            for g in gpus:
                g.usable = False
            notes.append("torch here cannot use the GPU (a CPU build of torch, or a driver too old for it): "
                         "training would run on the CPU")
    total, avail = _ram()
    return Hardware(gpus=gpus, cpu_count=_cpu_count(), ram_total_gb=total, ram_available_gb=avail,
                    cpu_bf16=_cpu_bf16(), cuda_available=cuda, torch_cuda=torch_cuda, driver=driver,
                    disk_free_gb=free_disk_gb(path), notes=notes)


def _torch_gpus(notes: list[str]) -> tuple[list[GpuInfo], bool, str | None]:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken torch install must not break the probe
        notes.append(f"torch not importable ({type(exc).__name__})")
        return [], False, None
    version = getattr(torch.version, "cuda", None)
    try:
        if not torch.cuda.is_available():
            return [], False, version
        out = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            total = p.total_memory / GIB
            out.append(GpuInfo(index=i, name=p.name, total_gb=round(total, 2), free_gb=round(total, 2),
                               bf16=p.major >= 8, compute_capability=(p.major, p.minor)))
        return out, True, version
    except Exception as exc:  # noqa: BLE001
        notes.append(f"CUDA probe failed ({type(exc).__name__}: {exc})"[:200])
        return [], False, version


def _nvml_gpus(notes: list[str]) -> tuple[str | None, list[GpuInfo]] | None:
    try:
        nv = nvml_init()
    except NvmlUnavailable:
        return None  # no driver: the usual case on a CPU machine
    try:
        driver = nvml_driver(nv)
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        out = []
        for i, h in enumerate(handles):
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            try:
                cc = tuple(nv.nvmlDeviceGetCudaComputeCapability(h))
            except Exception:  # noqa: BLE001 - old drivers
                cc = (0, 0)
            out.append(GpuInfo(index=i, name=_text(nv.nvmlDeviceGetName(h)), total_gb=round(mem.total / GIB, 2),
                               free_gb=round(mem.free / GIB, 2), bf16=cc[0] >= 8, compute_capability=cc))
        picked = nvml_visible(nv, handles)
        if picked is not None:
            # Numbered as torch numbers them: in the variable's order, from 0.
            out = [out[i] for i in picked]
            for new, g in enumerate(out):
                g.index = new
        return driver, out
    except Exception as exc:  # noqa: BLE001
        notes.append(f"NVML query failed ({type(exc).__name__})")
        return None
    finally:
        nvml_shutdown(nv)


# ----------------------------------------------------------------------------- NVML

class NvmlUnavailable(Exception):
    """NVML cannot be used on this machine; the message says why, in one line."""


def nvml_init():
    """The pynvml module, initialised; pair with nvml_shutdown. Raises NvmlUnavailable (no package, no driver)."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        raise NvmlUnavailable("nvidia-ml-py (pynvml) is not installed") from None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        text = str(exc) or type(exc).__name__
        if "Not Found" in text or "LibraryNotFound" in type(exc).__name__:
            text += " (no NVIDIA driver on this machine)"
        raise NvmlUnavailable(f"NVML unavailable: {text}") from None
    return pynvml


def nvml_shutdown(nv) -> None:
    try:
        nv.nvmlShutdown()
    except Exception:  # noqa: BLE001 - already shut down
        pass


def nvml_driver(nv) -> str:
    return _text(nv.nvmlSystemGetDriverVersion())


@contextlib.contextmanager
def nvml():
    """NVML for the block: `with nvml() as nv: ...`. Raises NvmlUnavailable on entry."""
    nv = nvml_init()
    try:
        yield nv
    finally:
        nvml_shutdown(nv)


# nvmlDeviceGetTopologyCommonAncestor's levels: how far apart two GPUs are on the PCIe tree (NVLink is separate).
TOPOLOGY = {0: "same board", 10: "one PCIe switch", 20: "several PCIe switches", 30: "one PCIe host bridge",
            40: "one NUMA node (across host bridges)", 50: "across NUMA nodes (the slowest path)"}


def nvml_interconnect(nv) -> list[str]:
    """How GPU 0 reaches each other visible GPU: its active NVLink links, else the PCIe path. What a run on several
    GPUs all-reduces its gradients (DDP) or gathers its weights (FSDP) over."""
    every = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
    picked = nvml_visible(nv, every)
    handles = [every[i] for i in (range(len(every)) if picked is None else picked)]
    if len(handles) < 2:
        return []
    links = 0
    for link in range(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18)):
        try:
            links += int(nv.nvmlDeviceGetNvLinkState(handles[0], link) == 1)
        except Exception:  # noqa: BLE001 - no such link, or no NVLink on this GPU
            break
    out = []
    for i, h in enumerate(handles[1:], start=1):
        try:
            level = nv.nvmlDeviceGetTopologyCommonAncestor(handles[0], h)
            path = TOPOLOGY.get(int(level), f"topology level {level}")
        except Exception:  # noqa: BLE001 - not reported (a virtual machine, MIG)
            path = "PCIe path unknown"
        out.append(f"GPU 0 <-> {i}: {f'NVLink ({links} links on GPU 0)' if links else path}")
    return out


def nvml_visible(nv, handles: Sequence) -> list[int] | None:
    """cuda_visible() for NVML's devices `handles`, reading their UUIDs (and their MIG instances' when the
    variable names one); None when CUDA_VISIBLE_DEVICES is unset."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    want_mig = "MIG-" in value
    devices = []
    for h in handles:
        ids = [_text(nv.nvmlDeviceGetUUID(h))]
        if want_mig:
            ids += _mig_uuids(nv, h)
        devices.append(ids)
    return cuda_visible(devices, value)


def _mig_uuids(nv, handle) -> list[str]:
    try:
        count = nv.nvmlDeviceGetMaxMigDeviceCount(handle)
    except Exception:  # noqa: BLE001 - not a MIG-capable GPU
        return []
    out = []
    for i in range(count):
        try:
            out.append(_text(nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, i))))
        except Exception:  # noqa: BLE001 - an empty MIG slot
            continue
    return out


def cuda_visible(devices: Sequence[Sequence[str]], value: str | None) -> list[int] | None:
    """The devices CUDA_VISIBLE_DEVICES=`value` selects, as indices into `devices`, in the order CUDA numbers
    them; None when the variable is unset (all visible).

    `devices[i]` holds the UUIDs of NVML's GPU i: its own (GPU-...), then its MIG instances' (MIG-...). A token
    is an index, a UUID or a unique start of one, or the older MIG-GPU-<uuid>/<gi>/<ci> form. As in CUDA, the
    list ends at the first token that names no device, and a device named twice counts once.
    """
    if value is None:
        return None
    picked: list[int] = []
    for token in (t.strip() for t in value.split(",")):
        index = _device_index(devices, token)
        if index is None:
            break
        if index not in picked:
            picked.append(index)
    return picked


def _device_index(devices: Sequence[Sequence[str]], token: str) -> int | None:
    if token.isdigit():
        return int(token) if int(token) < len(devices) else None
    if token.startswith("MIG-GPU-"):  # MIG-GPU-<parent uuid>/<gi>/<ci>: the parent GPU is what NVML samples
        token = token[len("MIG-"):].split("/")[0]
    if not token.startswith(("GPU-", "MIG-")):
        return None
    matches = [i for i, ids in enumerate(devices) if any(u.startswith(token) for u in ids)]
    return matches[0] if len(matches) == 1 else None


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _ram() -> tuple[float, float]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        total, avail = vm.total, vm.available
    except Exception:  # noqa: BLE001
        total = avail = 0
    # A container's memory limit (cgroup v2, then v1) is what the run may really use.
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_f).read_text().strip()
            if limit.isdigit() and int(limit) < (total or 2**62):
                used = int(Path(usage_f).read_text().strip())
                total, avail = int(limit), max(0, min(avail or int(limit), int(limit) - used))
            break
        except (OSError, ValueError):
            continue
    return round(total / GIB, 2), round(avail / GIB, 2)


def _cpu_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def free_disk_gb(path: str | os.PathLike = ".") -> float | None:
    """Free space where `path` is (or would be created), in GiB."""
    p = Path(path).expanduser().resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return round(shutil.disk_usage(p).free / GIB, 2)
    except OSError:
        return None


# ----------------------------------------------------------------------------- precision

def pick_precision(requested: str, gpu: bool, gpu_bf16: bool) -> str:
    """The precision a run trains in: fp32 on the CPU whatever was asked (mixed precision is slower there and
    the Trainer refuses fp16), else `requested`, with `auto` meaning bf16 where the GPU has it, else fp16
    with loss scaling."""
    if not gpu:
        return "fp32"
    if requested == "auto":
        return "bf16" if gpu_bf16 else "fp16"
    return requested


def torch_dtype(name: str):
    """The torch dtype of a precision name (bf16, fp16, fp32)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


# ----------------------------------------------------------------------------- text

def describe(hw: Hardware) -> list[str]:
    """Lines for the wizard's welcome panel and doctor."""
    lines = []
    for g in hw.gpus:
        cc = ".".join(map(str, g.compute_capability))
        line = (f"GPU {g.index}: {g.name}, {g.total_gb:.1f} GiB ({g.free_gb:.1f} free), "
                f"{'bf16' if g.bf16 else 'no bf16 (fp16)'}, compute {cc}")
        if not g.usable:
            line += " - not usable by this torch"
        lines.append(line)
    if not hw.usable_gpus:
        lines.append("CPU only: training runs in fp32 on the CPU (small models and the demo are fine)"
                     if not hw.gpus else "no GPU torch can use: training would run on the CPU")
    lines.append(f"CPU: {hw.cpu_count} cores{', bf16' if hw.cpu_bf16 else ''}; RAM {hw.ram_total_gb:.1f} GiB "
                 f"({hw.ram_available_gb:.1f} available)")
    if hw.disk_free_gb is not None:
        lines.append(f"disk: {hw.disk_free_gb:.1f} GiB free" + ("" if hw.disk_free_gb > 20 else
                                                               " (a 7B model needs ~15 GiB)"))
    if hw.driver or hw.torch_cuda:
        lines.append(f"NVIDIA driver {hw.driver or '?'}, torch built for CUDA {hw.torch_cuda or '-'}")
    lines.extend(hw.notes)
    return lines
