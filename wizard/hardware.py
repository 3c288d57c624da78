"""What this machine has for training: GPUs (name, memory, bf16), CPU cores and RAM, free disk, which hubs
answer. Every probe is guarded and quick: the wizard's welcome panel and `tune-wizard doctor` call it
on machines with no GPU, no NVML, no network or a CPU build of torch."""
from __future__ import annotations

import os
import shutil
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

GIB = 2**30


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


def detect(path: str | os.PathLike = ".") -> Hardware:
    """Probe the machine. Never raises for a missing GPU, NVML or torch; what could not be told is in notes."""
    notes: list[str] = []
    gpus, cuda, torch_cuda = _torch_gpus(notes)
    driver = None
    nvml = _nvml_gpus(notes)
    if nvml is not None:
        driver, nv = nvml
        if gpus:
            # NVML's free memory needs no CUDA context; match cards by name and total size, in order.
            for g, n in zip(gpus, _visible(nv)):
                if n.name == g.name:
                    g.free_gb = n.free_gb
        elif nv:
            gpus = _visible(nv)
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
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver: the usual case on a CPU machine
        return None
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            try:
                cc = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(h))
            except Exception:  # noqa: BLE001 - old drivers
                cc = (0, 0)
            out.append(GpuInfo(index=i, name=_text(pynvml.nvmlDeviceGetName(h)), total_gb=round(mem.total / GIB, 2),
                               free_gb=round(mem.free / GIB, 2), bf16=cc[0] >= 8, compute_capability=cc))
        return driver, out
    except Exception as exc:  # noqa: BLE001
        notes.append(f"NVML query failed ({type(exc).__name__})")
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _visible(gpus: list[GpuInfo]) -> list[GpuInfo]:
    """NVML lists every card; CUDA_VISIBLE_DEVICES (numeric form) picks and renumbers the ones torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None or not all(p.strip().isdigit() for p in env.split(",") if p.strip()):
        return gpus
    picked = [gpus[int(p)] for p in env.split(",") if p.strip() and int(p) < len(gpus)]
    for new, g in enumerate(picked):
        g.index = new
    return picked


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


# ----------------------------------------------------------------------------- hubs

def hub_urls() -> dict[str, str]:
    hf = os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co"
    ms = os.environ.get("MODELSCOPE_DOMAIN", "").strip() or "www.modelscope.cn"
    if "://" not in ms:
        ms = "https://" + ms
    return {"huggingface": hf.rstrip("/"), "modelscope": ms.rstrip("/")}


def _answers(url: str, timeout: float) -> bool:
    req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "tune-wizard"})
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            return True
    except urllib.error.HTTPError as exc:
        # 401/403/405: the hub answered but refused HEAD or wants a token. Not 404: a hub's front page
        # exists, and an intercepting gateway on an offline network answers 404 for everything.
        return exc.code in (401, 403, 405)
    except Exception:  # noqa: BLE001 - DNS, refused, TLS, timeout: not reachable
        return False


def hubs_reachable(timeout: float = 2.0) -> dict[str, bool]:
    """Which hubs answer an HTTPS HEAD within `timeout` seconds, asked concurrently. Daemon threads and a
    hard deadline: a hung DNS lookup can neither stall the caller nor keep the process from exiting."""
    urls = hub_urls()
    result = {name: False for name in urls}

    def probe(name: str, url: str) -> None:
        result[name] = _answers(url, timeout)

    threads = [threading.Thread(target=probe, args=item, daemon=True) for item in urls.items()]
    for t in threads:
        t.start()
    deadline = timeout + 0.5
    for t in threads:
        t.join(deadline)
    return dict(result)


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
