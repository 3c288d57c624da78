"""tune-wizard doctor: what this machine can do, and what is missing."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--path", default=".", help="where runs will be written (for free disk)")
    p.add_argument("--no-network", action="store_true", help="skip the hub checks")


def checks(path: str, network: bool) -> list[tuple[str, bool, str]]:
    rows: list[tuple[str, bool, str]] = []
    import torch

    from wizard import hardware

    rows.append(("torch", True, torch.__version__))
    cuda = torch.cuda.is_available()
    if cuda:
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        rows.append(("CUDA", True, f"{torch.version.cuda}: {names}"))
        rows.append(("bf16", torch.cuda.is_bf16_supported(), "supported" if torch.cuda.is_bf16_supported()
                     else "not supported: fp16 with loss scaling will be used"))
    else:
        rows.append(("CUDA", False, "no NVIDIA GPU visible: training runs on the CPU (fine for the demo)"))
    for pkg in ("transformers", "peft", "trl", "datasets", "bitsandbytes", "gguf", "modelscope"):
        rows.append(_package(pkg, imported=cuda and pkg in IMPORTED_ON_GPU))
    try:
        with hardware.nvml() as nv:
            rows.append(("NVML", True, f"driver {hardware.nvml_driver(nv)}"))
    except hardware.NvmlUnavailable as exc:
        rows.append(("NVML", False, f"{exc}: the dashboard shows CPU and RAM"))
    except Exception as exc:  # noqa: BLE001 - NVML started but would not answer
        rows.append(("NVML", False, f"query failed ({type(exc).__name__}): the dashboard shows CPU and RAM"))
    rows += _several_gpus(torch, hardware)
    free = hardware.free_disk_gb(path)
    if free is None:
        rows.append(("disk", False, f"free space at {path} unknown"))
    else:
        rows.append(("disk", free > 20, f"{free:.1f} GiB free at {path}" + ("" if free > 20 else
                                                                            ": a 7B model needs ~15 GiB")))
    if network:
        from wizard import hubs

        for hub, ok in hubs.reachable().items():
            rows.append((hub, ok, "reachable" if ok else "not reachable: use local models (model.hub: local)"))
    return rows


def _several_gpus(torch, hardware) -> list[tuple[str, bool, str]]:
    """Runs on several GPUs (`run --gpus N`): the backend torchrun's processes talk over, and between which GPUs."""
    import torch.distributed as dist

    if not dist.is_available():
        return [("distributed", False, "this torch has no torch.distributed: runs on one GPU only")]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        return [("distributed", True, f"{count} GPU{'s' if count != 1 else ''}: `run --gpus N` needs N GPUs "
                                      "(gloo CPU processes work for testing)")]
    nccl = dist.is_nccl_available()
    version = ".".join(map(str, torch.cuda.nccl.version())) if nccl else "not available"
    rows = [("NCCL", nccl, f"{version}; {count} GPUs: `run --gpus {count}` (or all)")]
    try:
        with hardware.nvml() as nv:
            rows += [("interconnect", True, line) for line in hardware.nvml_interconnect(nv)]
    except Exception as exc:  # noqa: BLE001 - NVML's absence is reported above
        rows.append(("interconnect", False, f"unknown ({type(exc).__name__})"))
    return rows


# Imported to be checked where there is a GPU: bitsandbytes shows a broken CUDA set-up only when imported. Everything
# else, and bitsandbytes on a machine without a GPU (its CPU backend has no set-up to break; importing it takes ~6 s
# on a small machine), is read from the installed metadata: importing peft and trl (which import transformers'
# models) takes ~8 s there too, and doctor should answer in seconds.
IMPORTED_ON_GPU = ("bitsandbytes",)


def _package(pkg: str, imported: bool = False) -> tuple[str, bool, str]:
    from importlib import metadata, util

    if not imported:
        if util.find_spec(pkg) is None:
            return pkg, False, "not installed"
        try:
            return pkg, True, metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return pkg, True, "installed"
    try:
        mod = __import__(pkg)
        return pkg, True, getattr(mod, "__version__", "installed")
    except Exception as exc:  # noqa: BLE001 - bitsandbytes raises more than ImportError on a broken CUDA set-up
        return pkg, False, f"not usable: {type(exc).__name__}: {exc}"[:160]


def run(args) -> int:
    from rich.table import Table

    from wizard.ui import make_console

    table = Table(title="tune-wizard doctor")
    for col in ("check", "ok", "detail"):
        table.add_column(col)
    for name, ok, detail in checks(args.path, not args.no_network):
        table.add_row(name, "yes" if ok else "no", detail)
    make_console().print(table)
    return 0
