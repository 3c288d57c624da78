"""loss.png from metrics.jsonl: raw and smoothed training loss, eval points; DPO rewards below.

Uses matplotlib's Agg canvas directly (no pyplot), so it never touches a display or global backend state.
"""
from __future__ import annotations

from pathlib import Path

from wizard import run_folder as rf
from wizard.monitor.charts import ema, finite, smoothing_weight


def save_loss_plot(run_dir: str | Path, out: str | Path | None = None) -> Path | None:
    """Write RUN_DIR/loss.png (or `out`); None when metrics.jsonl has no loss to plot yet."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    rows = rf.read_jsonl(run_dir / rf.METRICS)
    train = [r for r in rows if "loss" in r and "eval_loss" not in r and finite(r.get("step"))]
    evals = [(r["step"], r["eval_loss"]) for r in rows if finite(r.get("eval_loss")) and finite(r.get("step"))]
    steps = [r["step"] for r in train]
    losses = [r["loss"] if finite(r["loss"]) else float("nan") for r in train]
    if not any(finite(v) for v in losses) and not evals:
        return None
    dpo = [r for r in train if finite(r.get("rewards/margins")) or finite(r.get("rewards/accuracies"))]

    fig = Figure(figsize=(8, 6.5 if dpo else 4.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(2, 1, 1) if dpo else fig.add_subplot(1, 1, 1)
    if steps:
        n = sum(1 for v in losses if finite(v))
        smooth = [float("nan") if v is None else v for v in ema(losses)]
        ax.plot(steps, losses, color="tab:blue", alpha=0.35, linewidth=1, label="train loss")
        ax.plot(steps, smooth, color="tab:blue", linewidth=2, label=f"smoothed (EMA {smoothing_weight(n):.2f})")
        bad = [s for s, v in zip(steps, losses) if not finite(v)]
        if bad:
            ax.scatter(bad, [min(v for v in losses if finite(v))] * len(bad) if n else [0] * len(bad),
                       marker="x", color="tab:red", label=f"non-finite loss ({len(bad)})", zorder=3)
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], "o-", color="tab:orange", markersize=5,
                linewidth=1, label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    state = rf.read_json(run_dir / rf.STATE) or {}
    ax.set_title(f"{state.get('name') or run_dir.name}  ·  {state.get('model', '')}".rstrip(" ·"), fontsize=10)

    if dpo:
        ax2 = fig.add_subplot(2, 1, 2, sharex=ax)
        ds = [r["step"] for r in dpo]
        ax2.plot(ds, [r.get("rewards/margins", float("nan")) for r in dpo], color="tab:green", label="reward margin")
        ax2.set_ylabel("margin")
        ax2.grid(True, alpha=0.3)
        ax3 = ax2.twinx()
        ax3.plot(ds, [r.get("rewards/accuracies", float("nan")) for r in dpo], color="tab:purple",
                 linestyle="--", label="reward accuracy")
        ax3.set_ylim(0, 1.05)
        ax3.set_ylabel("accuracy")
        ax2.set_xlabel("step")
        lines = ax2.get_lines() + ax3.get_lines()
        ax2.legend(lines, [ln.get_label() for ln in lines], loc="lower right", fontsize=8)

    path = Path(out) if out is not None else run_dir / rf.LOSS_PLOT
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)  # a viewer refreshing loss.png never sees half a file
    return path
