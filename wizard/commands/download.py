"""tune-wizard download MODEL [--to DIR] [--include PATTERN]: fetch a model once, from Hugging Face or
ModelScope, and say where it is and which files, so training can run offline, or on another machine from a
copy of that folder (model.id: FOLDER, model.hub: local)."""
from __future__ import annotations

from pathlib import Path

from wizard.errors import UserError


def add_arguments(p) -> None:
    from wizard.model_source import MODEL_FILES

    p.add_argument("model", help="a catalog alias (`tune-wizard recipes --models`) or a hub id (owner/name)")
    p.add_argument("--to", metavar="DIR", help="the folder to save it in (default: the hub client's cache)")
    p.add_argument("--include", metavar="PATTERN", action="append",
                   help=f"only files matching this glob; repeat for more (default: what training reads: "
                        f"{' '.join(MODEL_FILES)}; '*' for every file)")
    p.add_argument("--hub", choices=("auto", "huggingface", "modelscope"), default="auto",
                   help="auto: ModelScope with USE_MODELSCOPE_HUB=1, else Hugging Face (HF_ENDPOINT for a mirror)")
    p.add_argument("--revision", help="a branch, tag or commit")


def check_target(to: str | None) -> Path | None:
    """--to as a folder that may be written: new, empty, or a previous download (never someone's other files)."""
    from wizard.hubs import target_problem

    if to is None:
        return None
    problem = target_problem(to)
    if problem:
        raise UserError(f"--to {problem}", hint="give a new folder, e.g. --to models/my-model")
    return Path(to).expanduser()


def saved_files(folder: Path) -> list[tuple[str, int]]:
    """(path inside the folder, bytes) of the model's files, without the hub clients' own bookkeeping."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not rel.parts[0].startswith("."):
            out.append((str(rel), p.stat().st_size))
    return out


def run(args) -> int:
    from rich.table import Table

    from wizard import hubs
    from wizard.model_source import MODEL_FILES, hub_repo
    from wizard.ui import make_console

    repo, hub = hub_repo(args.model, args.hub)
    target = check_target(args.to)
    console = make_console()
    include = args.include or list(MODEL_FILES)
    with console.status(f"Downloading {repo} from {hubs.TITLES[hub]}…", spinner="dots"):
        folder = Path(hubs.download(hub, repo, to=str(target) if target else None, include=include,
                                    revision=args.revision))
    files = saved_files(folder)
    if not files:
        raise UserError(f"{repo}: no file matches {' '.join(include)}", hint="check --include, or pass --include '*'")
    table = Table(title=f"{repo} ({hubs.TITLES[hub]}): {len(files)} files", title_justify="left", box=None)
    table.add_column("file")
    table.add_column("MiB", justify="right")
    for name, size in files:
        table.add_row(name, f"{size / 2**20:,.1f}")
    console.print(table)
    console.print(f"saved in {folder}")
    console.print(f"train from it: model: {{id: {folder}, hub: local}} in a spec, or `tune-wizard init` → "
                  "A local folder")
    return 0
