"""tune-wizard run SPEC [--set k.path=v ...] [--resume [auto|DIR]]"""
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


def run(args) -> int:
    import os

    from wizard.engine.runner import train_file
    from wizard.hardware import GPU_MEMORY_ENV

    if args.gpu_memory is not None:
        # An environment variable, so that every process of the run (and anything it starts) sees the same cap.
        os.environ[GPU_MEMORY_ENV] = str(args.gpu_memory)

    train_file(args.spec, args.overrides, args.resume, args.plain)
    return 0
