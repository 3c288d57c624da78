"""tune-wizard validate SPEC: the spec, every dataset row, the token lengths, output_dir and the disk space the run
needs: whatever `run` would refuse, without training."""
from __future__ import annotations

from wizard import spec as specmod


def add_arguments(p) -> None:
    p.add_argument("spec", help="run spec (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-tokens", action="store_true",
                   help="skip loading the tokenizer (format and rows only; no token counts)")


def run(args) -> int:
    from rich.table import Table

    from wizard.ui import make_console

    spec = specmod.load(args.spec, args.overrides)
    from wizard.data.load import load_examples

    train, evals, report = load_examples(spec.data, task=spec.task, seed=spec.train.seed)
    console = make_console()
    console.print(f"spec {args.spec}: valid ({spec.task}/{spec.method}, model {spec.model.id})")
    table = Table(title="datasets")
    for col in ("source", "format", "rows read", "rows used"):
        table.add_column(col)
    for src in report.sources:
        table.add_row(str(src.path), str(src.format), str(src.rows_read), str(src.rows_used))
    console.print(table)
    console.print(f"train rows: {len(train)}   eval rows: {len(evals)}")
    for w in report.warnings:
        console.print(f"warning: {w}")
    for w in spec_warnings(spec, rows=len(train) + len(evals), remote=not args.no_tokens):
        console.print(f"warning: {w}")
    from wizard.engine.preflight import check_disk, check_output_dir

    check_output_dir(spec)  # what `run` checks before it makes the run folder
    if args.no_tokens:
        return 0
    from wizard.data.render import ensure_chat_template, tokenize_sft
    from wizard.model_source import load_tokenizer, resolve

    model_path = resolve(spec.model.id, spec.model.hub, spec.model.revision)
    need = check_disk(spec, model_path)
    if need is not None:
        console.print(f"disk: the run writes {need.describe()} under {spec.output_dir}")
    tok = load_tokenizer(model_path, spec.model.trust_remote_code)
    warning = ensure_chat_template(tok)
    if warning:
        console.print(f"warning: {warning}")
    if spec.task == "sft":
        _, stats = tokenize_sft(train, tok, max_length=spec.data.max_length, overflow=spec.data.overflow,
                                assistant_only_loss=spec.data.assistant_only_loss)
        emptied = f", {stats.emptied} of them because truncating left no answer to learn" if stats.emptied else ""
        longest = f"at least {stats.longest}" if stats.cut else str(stats.longest)
        console.print(f"tokens: {stats.tokens:,} in {stats.rows_out} of {len(train)} train rows, longest {longest}; "
                      f"over max_length {spec.data.max_length}: {stats.truncated + stats.dropped} "
                      f"({stats.truncated} truncated, {stats.dropped} dropped{emptied}; policy: {spec.data.overflow})")
        if stats.cut:
            rows = "1 row holds a message" if stats.cut == 1 else f"{stats.cut} rows hold messages"
            console.print(f"{rows} far longer than max_length {spec.data.max_length}: cut before tokenizing, as "
                          "nothing past the cut could fit")
    else:
        from wizard.engine.dpo import preference_lengths

        console.print(preference_lengths(spec, tok, train))
    return 0


def spec_warnings(spec, rows: int, remote: bool) -> list:
    """Legal values that are almost surely a mistake (wizard.spec.warnings), as the wizard warns of them. The
    model's config is read when it is at hand (catalog, folder), from a hub only when REMOTE."""
    from pathlib import Path

    from wizard.catalog import lookup
    from wizard.init.sanity import facts_for
    from wizard.spec.warnings import NEEDS_CUDA_OPTIMIZERS, check

    shape = None
    if remote or lookup(spec.model.id) or Path(spec.model.id).expanduser().exists():
        try:
            from wizard.estimate import shape_for_model

            shape = shape_for_model(spec.model.id, spec.model.hub, spec.model.revision)
        except Exception:  # noqa: BLE001 - no config: the rules that need it say nothing
            shape = None
    cuda = None
    if spec.train.optimizer in NEEDS_CUDA_OPTIMIZERS:  # the only rule that needs it: no probe otherwise
        from wizard.hardware import detect

        cuda = bool(detect().usable_gpus)
    return check(spec, facts_for(spec, shape=shape, cuda=cuda, rows=rows))
