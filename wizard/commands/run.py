"""tune-wizard run SPEC [--set k.path=v ...] [--resume [auto|DIR]]"""
from __future__ import annotations

from wizard import spec as specmod


def add_arguments(p) -> None:
    p.add_argument("spec", help="run spec (YAML), e.g. recipes/demo.yaml or runs/<run>/spec.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set train.lr=1e-4 --set data.max_length=512")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="auto|DIR",
                   help="continue the newest complete checkpoint of the newest run of this spec, or of DIR")
    p.add_argument("--plain", action="store_true", help="one line per logging step, no live dashboard")


def _reporter_factory(plain: bool):
    def make(run_dir):
        if plain:
            from wizard.engine.reporting import PlainReporter

            return PlainReporter()
        from wizard.monitor.live import make_reporter

        return make_reporter(run_dir)
    return make


def run_spec_file(path, overrides=None, resume=None, plain=False) -> int:
    """Shared by `tune-wizard run` and the wizard's "Start training now?"."""
    from wizard.engine.runner import train

    spec = specmod.load(path, overrides or [])
    train(spec, resume=resume, reporter_factory=_reporter_factory(plain))
    return 0


def run(args) -> int:
    return run_spec_file(args.spec, args.overrides, args.resume, args.plain)
