"""tune-wizard run SPEC [--set k.path=v ...] [--resume [auto|DIR]]"""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("spec", help="run spec (YAML), e.g. recipes/demo.yaml or runs/<run>/spec.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set train.lr=1e-4 --set data.max_length=512")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="auto|DIR",
                   help="continue the newest complete checkpoint of the newest run of this spec, or of DIR")
    p.add_argument("--plain", action="store_true", help="one line per logging step, no live dashboard")


def run(args) -> int:
    from wizard.engine.runner import train_file

    train_file(args.spec, args.overrides, args.resume, args.plain)
    return 0
