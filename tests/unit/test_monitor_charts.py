"""The terminal charts: exact sizes on short, long, flat and NaN-containing series."""
from __future__ import annotations

import math

import pytest

from wizard.monitor import charts

BRAILLE = range(0x2801, 0x2900)


def _rows(text) -> list[str]:
    return text.plain.split("\n")


def _plot_cells(text, label_w: int) -> str:
    return "".join(r[label_w + 1:] for r in _rows(text)[:-1])


@pytest.mark.parametrize("width,height", [(16, 3), (40, 8), (97, 20)])
def test_chart_is_exactly_the_requested_size(width, height):
    steps = list(range(1, 51))
    losses = [2.0 / s + 0.1 for s in steps]
    rows = _rows(charts.loss_chart(steps, losses, width, height, evals=[(25, 0.3)]))
    assert len(rows) == height
    assert all(len(r) == width for r in rows), [len(r) for r in rows]


def test_short_series_one_point_is_drawn_and_labelled():
    text = charts.loss_chart([5], [1.25], 40, 6)
    rows = _rows(text)
    assert len(rows) == 6 and all(len(r) == 40 for r in rows)
    assert any(ord(c) in BRAILLE for c in text.plain)
    assert rows[-1].strip().startswith("└step 5")
    # the flat band around a single value still gets three distinct labels
    labels = [r.split("┤")[0].strip() for r in rows if "┤" in r]
    assert len(set(labels)) == 3 and float(labels[0]) > 1.25 > float(labels[-1])


def test_long_series_is_downsampled_to_the_width_and_keeps_the_trend():
    steps = list(range(1, 100_001))
    losses = [3.0 * math.exp(-s / 20_000) + 0.5 for s in steps]
    text = charts.loss_chart(steps, losses, 60, 10)
    rows = _rows(text)
    assert len(rows) == 10 and all(len(r) == 60 for r in rows)
    assert rows[-1].rstrip().endswith("100000")
    # the curve falls: ink in the top row sits at the left, ink in the bottom plot row at the right
    top, bottom = rows[0].split("┤", 1)[1], rows[-2].split("┤", 1)[1]
    first_top = next(i for i, c in enumerate(top) if c != " ")
    first_bottom = next(i for i, c in enumerate(bottom) if c != " ")
    assert first_top < 5 and first_bottom > 20


def test_flat_series_draws_one_horizontal_line():
    text = charts.loss_chart(list(range(10)), [0.7] * 10, 40, 5)
    rows = _rows(text)
    inked = [i for i, r in enumerate(rows[:-1]) if any(ord(c) in BRAILLE for c in r)]
    assert len(inked) == 1, rows
    labels = [r.split("┤")[0].strip() for r in rows if "┤" in r]
    assert float(labels[1]) == pytest.approx(0.7) and float(labels[0]) > 0.7 > float(labels[2])


def test_nan_and_inf_are_skipped_and_marked():
    steps = list(range(1, 21))
    losses = [1.0 / s for s in steps]
    losses[5], losses[12] = float("nan"), float("inf")
    text = charts.loss_chart(steps, losses, 50, 8)
    rows = _rows(text)
    assert len(rows) == 8 and all(len(r) == 50 for r in rows)
    assert text.plain.count(charts.BAD_MARK) == 2
    assert "nan" not in text.plain.lower() and "inf" not in text.plain.lower()


def test_all_nan_or_empty_series_says_it_is_waiting():
    for losses in ([], [float("nan")] * 5):
        text = charts.loss_chart(list(range(len(losses))), losses, 40, 4)
        rows = _rows(text)
        assert len(rows) == 4 and all(len(r) == 40 for r in rows)
        assert "waiting for the first logged loss" in text.plain


def test_eval_points_are_marked_where_they_are():
    steps = list(range(1, 41))
    text = charts.loss_chart(steps, [1.0] * 40, 60, 8, evals=[(20, 1.0), (40, 1.0)])
    assert text.plain.count(charts.EVAL_MARK) == 2


def test_ema_skips_nan_and_is_debiased():
    out = charts.ema([1.0, float("nan"), 1.0, 1.0], weight=0.9)
    assert out[1] is None
    assert out[0] == pytest.approx(1.0) and out[3] == pytest.approx(1.0)  # no pull towards 0 at the start
    assert charts.smoothing_weight(10) < charts.smoothing_weight(1000) <= 0.95


def test_sparkline_progress_bar_and_numbers():
    assert charts.sparkline([0, 50, 100], 5, 0, 100) == "  ▁▅█"
    assert charts.sparkline([None, float("nan"), 3], 3) == "  " + charts.BLOCKS[3]
    assert len(charts.sparkline(range(1000), 12)) == 12
    assert charts.sparkline([], 4) == "    "
    assert charts.progress_bar(0.5, 10) == "█████░░░░░"
    assert charts.progress_bar(None, 4) == "░░░░"
    assert len(charts.progress_bar(0.333, 17)) == 17 and charts.progress_bar(1.5, 3) == "███"
    assert charts.fmt_num(float("nan")) == "-" and charts.fmt_num(0.12345) == "0.1235"


def test_decimator_keeps_extremes_in_bounded_buckets():
    d = charts.Decimator(cap=64)
    for s in range(1, 10_001):
        d.add(float(s), 5.0 if s == 4321 else (float("nan") if s == 777 else 1.0), 1.0)
    assert 32 <= len(d.buckets) <= 64 and sum(b[6] for b in d.buckets) == 10_000
    assert max(b[3] for b in d.buckets) == 5.0 and sum(b[5] for b in d.buckets) == 1
    assert d.buckets[0][0] == 1.0 and d.buckets[-1][1] == 10_000.0


def test_state_keeps_its_ema_incrementally_equal_to_the_full_one():
    from wizard.monitor.state import DashboardState

    st = DashboardState()
    for s in range(1, 3001):
        st.add_row({"step": s, "loss": float("inf") if s == 50 else 1.0 + math.sin(s / 7.0)})
    weight, smooth = st.smoothed()
    assert weight == charts.smoothing_weight(2999)
    full = charts.ema(st.losses, weight)
    assert smooth[49] is None and all(a == pytest.approx(b) for a, b in zip(smooth, full) if b is not None)
    assert len(st.buckets.buckets) <= 1024 and st.n_bad == 1
