"""tune-wizard run SPEC [--set k.path=v ...] [--resume [auto|DIR]] [--gpus N|all [--nnodes ...]]"""
from __future__ import annotations

from wizard.hardware import gib_argument


def add_arguments(p) -> None:
    p.add_argument("spec", help="run spec (YAML), e.g. recipes/demo.yaml or runs/<run>/spec.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set train.lr=1e-4 --set data.max_length=512")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="auto|DIR",
                   help="continue the newest complete checkpoint of the newest run of this spec, or of DIR")
    p.add_argument("--plain", action="store_true", help="one line per logging step, no live dashboard")
    p.add_argument("--gpu-memory", type=gib_argument, metavar="GB",
                   help="use at most this much of the GPU (GiB), e.g. to leave room for another process: the "
                        "token budget and checkpointing are fitted to it and torch's allocator is capped at it")
    g = p.add_argument_group("several GPUs or machines (started through torchrun; see the README)")
    g.add_argument("--gpus", type=_gpus, metavar="N|all",
                   help="processes on this machine, one per GPU (spec: distributed.gpus); DDP or FSDP by "
                        "distributed.strategy")
    g.add_argument("--nnodes", type=int, default=1, metavar="N", help="machines in the run (default 1)")
    g.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine's number, 0 .. N-1")
    g.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                   help="where the machines meet (c10d rendezvous), e.g. node 0's address and a free port")
    g.add_argument("--rdzv-id", metavar="ID", help="the run's id, the same on every machine (default: spec name)")


def _gpus(text: str):
    import argparse

    if text == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"'{text}': a number of GPUs (1 or more) or 'all'")
    return n


def run(args) -> int:
    import os

    from wizard import spec as specmod
    from wizard.engine import launch
    from wizard.engine.runner import train_file
    from wizard.errors import SpecError
    from wizard.estimate.strategy import processes
    from wizard.hardware import GPU_MEMORY_ENV

    if args.gpu_memory is not None:
        # An environment variable, so that every process of the run (and anything it starts) sees the same cap.
        os.environ[GPU_MEMORY_ENV] = str(args.gpu_memory)
    if launch.inside_torchrun():
        train_file(args.spec, args.overrides, args.resume, args.plain)
        return 0
    overrides = list(args.overrides)
    if args.gpus is not None:
        overrides.append(f"distributed.gpus={args.gpus}")
    spec = specmod.load(args.spec, overrides)
    gpus = spec.distributed.gpus
    n = 1 if gpus == 1 else processes(gpus, launch.gpu_count())
    if n == 1 and args.nnodes == 1:
        train_file(args.spec, overrides, args.resume, args.plain)
        return 0
    if args.nnodes > 1 and not args.rdzv_endpoint:
        raise SpecError(f"--nnodes {args.nnodes}: the machines need a place to meet",
                        hint="add --rdzv-endpoint HOST:PORT (node 0's address and a free port), the same on each")
    nodes = launch.Nodes(args.nnodes, args.node_rank, args.rdzv_endpoint, args.rdzv_id)
    return launch.launch(spec, args.spec, overrides, n, resume=args.resume, plain=args.plain,
                         gpu_memory=args.gpu_memory, nodes=nodes)
