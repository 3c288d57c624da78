"""tune-wizard recipes: the bundled run specs and the model catalog."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--models", action="store_true", help="only the model catalog")


def _first_comment(path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def run(args) -> int:
    from rich.table import Table

    from wizard.catalog import load_catalog, recipe_files
    from wizard.ui import make_console

    console = make_console()
    if not args.models:
        t = Table(title="recipes (tune-wizard run <file>)")
        t.add_column("file")
        t.add_column("what")
        for f in recipe_files():
            t.add_row(str(f), _first_comment(f))
        console.print(t)
    t = Table(title="models (model.id: <alias>)")
    for col in ("alias", "family", "params", "context", "Hugging Face", "ModelScope", "LoRA targets"):
        t.add_column(col)
    for m in load_catalog().values():
        size = f"{m.params_b:g}B" + (" (bundled)" if m.bundled else "")
        t.add_row(m.alias, m.family, size, str(m.context), m.hf or "-", m.ms or "-", ",".join(m.target_modules))
    console.print(t)
    return 0
