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

    from wizard.engine import launch
    from wizard.hardware import GPU_MEMORY_ENV

    if args.gpu_memory is not None:
        # An environment variable, so that every process of the run (and anything it starts) sees the same cap.
        os.environ[GPU_MEMORY_ENV] = str(args.gpu_memory)
    nodes = launch.Nodes(args.nnodes, args.node_rank, args.rdzv_endpoint, args.rdzv_id)
    return launch.start(args.spec, args.overrides, resume=args.resume, plain=args.plain, gpus=args.gpus,
                        gpu_memory=args.gpu_memory, nodes=nodes)
