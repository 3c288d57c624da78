"""loss.png from a real metrics.jsonl."""
from __future__ import annotations

import math

from matplotlib.image import imread

from wizard import run_folder as rf
from wizard.monitor import save_loss_plot


def _metrics(d, n=50, dpo=False, nan_at=None):
    for s in range(1, n + 1):
        row = {"step": s, "loss": float("nan") if s == nan_at else 2 * math.exp(-s / 10) + 0.1}
        if dpo:
            row.update({"rewards/margins": 0.1 * s, "rewards/accuracies": min(1.0, s / n)})
        rf.append_jsonl(d / rf.METRICS, row)
        if s % 10 == 0:
            rf.append_jsonl(d / rf.METRICS, {"step": s, "eval_loss": 2 * math.exp(-s / 10) + 0.2})


def test_loss_png_is_written_with_raw_smoothed_and_eval(tmp_path):
    _metrics(tmp_path, nan_at=7)
    path = save_loss_plot(tmp_path)
    assert path == tmp_path / rf.LOSS_PLOT
    img = imread(path)
    assert img.shape[0] == 540 and img.shape[1] == 960  # 8x4.5 in at 120 dpi
    assert img[..., :3].std() > 0.05  # not a blank canvas
    assert not list(tmp_path.glob(".*tmp*"))


def test_dpo_metrics_add_a_rewards_plot(tmp_path):
    _metrics(tmp_path, dpo=True)
    img = imread(save_loss_plot(tmp_path, tmp_path / "dpo.png"))
    assert img.shape[0] == 780


def test_nothing_to_plot_gives_none(tmp_path):
    assert save_loss_plot(tmp_path) is None
    rf.append_jsonl(tmp_path / rf.METRICS, {"step": 1, "loss": float("nan")})
    assert save_loss_plot(tmp_path) is None and not (tmp_path / rf.LOSS_PLOT).exists()
