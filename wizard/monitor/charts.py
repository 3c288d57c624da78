"""Terminal charts as pure functions: a braille loss chart, sparklines, a progress bar.

Hand-written rather than plotext: plotext draws with its own ANSI codes and terminal-size guesses,
which fight Rich's layout; these return Rich Text of exactly the requested size, which is what a
fixed-height panel and a snapshot test need.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from rich.text import Text

BLOCKS = "▁▂▃▄▅▆▇█"
RAW_STYLE = "cyan"
EMA_STYLE = "bold yellow"
EVAL_STYLE = "bold magenta"
BAD_STYLE = "bold red"
EVAL_MARK = "●"
BAD_MARK = "×"

# Braille dot bits by (column in cell, row in cell): a cell is 2 dots wide and 4 high.
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


def finite(v) -> bool:
    if v is None or v is True or v is False:
        return False
    try:
        return math.isfinite(v)
    except (TypeError, ValueError):
        return False


def smoothing_weight(n: int) -> float:
    """EMA weight that suits the series length: ~n/10 points of memory, between 0.3 and 0.95.

    n is rounded up to a power of two so that a growing series changes its weight (and needs its EMA
    recomputed) only log2(n) times.
    """
    if n <= 0:
        return 0.3
    q = 1 << (n - 1).bit_length()
    return min(0.95, max(0.3, 1.0 - 10.0 / q))


class EmaTracker:
    """Debiased exponential moving average (TensorBoard's), one value at a time; skips non-finite values."""

    def __init__(self, weight: float):
        self.weight = weight
        self.acc = self.norm = 0.0

    def push(self, v) -> float | None:
        if v is None or not (v == v and v - v == 0):  # None, NaN, inf
            return None
        w = self.weight
        self.acc = w * self.acc + (1 - w) * v
        self.norm = w * self.norm + (1 - w)
        return self.acc / self.norm


def ema(values: Sequence[float | None], weight: float | None = None) -> list[float | None]:
    """Debiased EMA of a whole series; non-finite inputs give None and do not move it."""
    w = smoothing_weight(sum(1 for v in values if finite(v))) if weight is None else weight
    tracker = EmaTracker(w)
    return [tracker.push(v) for v in values]


class Decimator:
    """A loss series kept in at most `cap` buckets (min, max, last EMA), merged pairwise as it grows,
    so drawing a 100k-step run costs the same as drawing a 1k-step one. Appending is O(1) amortised."""

    def __init__(self, cap: int = 1024):
        self.cap = cap
        self.size = 1          # rows per bucket
        self.buckets: list[list] = []   # [first_step, last_step, lo, hi, ema, n_bad, count]

    def add(self, step: float, v, m: float | None) -> None:
        b = self.buckets[-1] if self.buckets else None
        if b is None or b[6] >= self.size:
            b = [step, step, math.inf, -math.inf, None, 0, 0]
            self.buckets.append(b)
        b[1] = step
        if v is not None and v == v and v - v == 0:
            if v < b[2]:
                b[2] = v
            if v > b[3]:
                b[3] = v
        else:
            b[5] += 1
        if m is not None:
            b[4] = m
        b[6] += 1
        if len(self.buckets) > self.cap:
            self._halve()

    def _halve(self) -> None:
        old, merged = self.buckets, []
        for i in range(0, len(old) - 1, 2):
            a, c = old[i], old[i + 1]
            merged.append([a[0], c[1], min(a[2], c[2]), max(a[3], c[3]), c[4] if c[4] is not None else a[4],
                           a[5] + c[5], a[6] + c[6]])
        if len(old) % 2:
            merged.append(old[-1])
        self.buckets = merged
        self.size *= 2

    @classmethod
    def of(cls, steps, losses, smooth, cap: int = 1024) -> Decimator:
        d = cls(cap)
        for s, v, m in zip(steps, losses, smooth):
            if finite(s):
                d.add(float(s), v, m)
        return d


def fmt_num(v: float | None, digits: int = 4) -> str:
    if not finite(v):
        return "-"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.{max(1, digits - 2)}e}"
    return f"{v:.{digits}g}" if a >= 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".") or "0"


def sparkline(values: Iterable[float | None], width: int, lo: float | None = None,
              hi: float | None = None) -> str:
    """The last `width` values as block characters, left-padded with spaces; a gap for missing values."""
    if width <= 0:
        return ""
    vals = list(values)[-width:]
    good = [v for v in vals if finite(v)]
    if not good:
        return " " * width
    lo = min(good) if lo is None else lo
    hi = max(good) if hi is None else hi
    out = []
    for v in vals:
        if not finite(v):
            out.append(" ")
        elif hi <= lo:
            out.append(BLOCKS[len(BLOCKS) // 2 - 1])
        else:
            frac = min(1.0, max(0.0, (v - lo) / (hi - lo)))
            out.append(BLOCKS[min(len(BLOCKS) - 1, int(frac * len(BLOCKS)))])
    return " " * (width - len(out)) + "".join(out)


def progress_bar(fraction: float | None, width: int) -> str:
    """A bar of exactly `width` cells; eighths for the partly filled cell. Readable without colour."""
    if width <= 0:
        return ""
    f = 0.0 if not finite(fraction) else min(1.0, max(0.0, fraction))
    eighths = int(round(f * width * 8))
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part and full < width else ""
    return ("█" * full + partial).ljust(width, "░")[:width]


def _y_range(vals: list[float]) -> tuple[float, float]:
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12 * max(1.0, abs(hi)):  # a flat series still gets a visible band around it
        pad = abs(hi) * 0.05 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.04
    return lo - pad, hi + pad


def loss_chart(steps: Sequence[float], losses: Sequence[float | None], width: int, height: int,
               evals: Sequence[tuple[float, float]] = (), weight: float | None = None,
               smooth: Sequence[float | None] | None = None) -> Text:
    """Training loss (raw dots, EMA line) with eval points, as exactly `height` lines of `width` cells.

    The last line is the step axis. Non-finite losses are marked with × on the bottom plot row. Too
    small an area, or no finite value yet, gives a one-line message padded to the size. `smooth` is
    ema(losses, weight) when the caller has it already.
    """
    if smooth is None or len(smooth) != len(losses):
        smooth = ema(losses, weight)
    return chart_from_buckets(Decimator.of(steps, losses, smooth).buckets, width, height, evals)


def chart_from_buckets(buckets: Sequence[list], width: int, height: int,
                       evals: Sequence[tuple[float, float]] = ()) -> Text:
    """loss_chart's drawing, from Decimator buckets: a bucket's min..max is drawn as a vertical run."""
    width, height = max(0, width), max(0, height)
    good = [b for b in buckets if b[2] <= b[3]]
    ev = [(float(s), float(v)) for s, v in evals if finite(s) and finite(v)]
    if width < 16 or height < 3 or not (good or ev):
        msg = "waiting for the first logged loss" if not (good or ev) else "(too small for a chart)"
        return _pad_block([msg[:width]], width, height)

    ys = [v for _, v in ev] + [b[2] for b in good] + [b[3] for b in good] + \
         [b[4] for b in buckets if b[4] is not None]
    y_lo, y_hi = _y_range([min(ys), max(ys)])
    xs = [b[0] for b in buckets] + [b[1] for b in buckets] + [s for s, _ in ev]
    x_lo, x_hi = min(xs), max(xs)

    labels = axis_labels(y_lo, y_hi)
    lab_w = max(len(t) for t in labels)
    plot_w, plot_h = width - lab_w - 1, height - 1
    px_w, px_h = plot_w * 2, plot_h * 4
    sx = (px_w - 1) / (x_hi - x_lo) if x_hi > x_lo else 0.0
    sy = (px_h - 1) / (y_hi - y_lo)
    top = px_h - 1

    def px(s: float) -> int:
        return _snap((s - x_lo) * sx)

    def py(v: float) -> int:  # 0 is the top dot row
        return top - min(top, max(0, _snap((v - y_lo) * sy)))

    raw = [[0] * plot_w for _ in range(plot_h)]
    line = [[0] * plot_w for _ in range(plot_h)]
    marks: dict[tuple[int, int], tuple[str, str]] = {}
    cols: dict[int, float] = {}  # EMA: the last value landing in each dot column

    def dot(grid, x: int, y: int) -> None:
        grid[y >> 2][x >> 1] |= _DOTS[x & 1][y & 3]

    for first, last, lo, hi, m, bad, _ in buckets:
        x = px((first + last) / 2)
        if lo <= hi:
            for y in range(py(hi), py(lo) + 1):
                dot(raw, x, y)
        if bad:
            marks[(plot_h - 1, x >> 1)] = (BAD_MARK, BAD_STYLE)
        if m is not None:
            cols[px(last)] = m

    prev = None
    for x in sorted(cols):
        y = py(cols[x])
        if prev is None:
            dot(line, x, y)
        else:
            x0, y0 = prev
            def at(xi, x0=x0, y0=y0, x=x, y=y):
                return int(round(y0 + (y - y0) * (xi - x0) / (x - x0)))
            for xi in range(x0 + 1, x + 1):  # a vertical run per column keeps steep drops connected
                ya, yb = sorted((at(xi - 1), at(xi)))
                for yy in range(ya, yb + 1):
                    dot(line, xi, yy)
        prev = (x, y)

    for s, v in ev:
        marks[(py(v) >> 2, px(s) >> 1)] = (EVAL_MARK, EVAL_STYLE)

    out = Text(no_wrap=True, overflow="crop")
    label_rows = {0: labels[0], (plot_h - 1) // 2: labels[1], plot_h - 1: labels[2]}
    for r in range(plot_h):
        lab = label_rows.get(r)
        out.append((lab.rjust(lab_w) + "┤") if lab is not None else " " * lab_w + "│", style="dim")
        run, run_style = [], None  # consecutive cells of one style become one span: cheaper to draw
        raw_r, line_r = raw[r], line[r]
        for c in range(plot_w):
            mark = marks.get((r, c)) if marks else None
            if mark is not None:
                ch, style = mark
            else:
                bits = raw_r[c] | line_r[c]
                ch = chr(0x2800 + bits) if bits else " "
                style = EMA_STYLE if line_r[c] else RAW_STYLE if bits else None
            if style != run_style and run:
                out.append("".join(run), style=run_style)
                run = []
            run_style = style
            run.append(ch)
        if run:
            out.append("".join(run), style=run_style)
        out.append("\n")
    left, right = f"step {fmt_step(x_lo)}", f"{fmt_step(x_hi)}"
    gap = plot_w - len(left) - len(right)
    axis = " " * lab_w + "└" + (left + " " * gap + right if gap >= 1 else left[:plot_w].ljust(plot_w))
    out.append(axis, style="dim")
    return out


def _snap(v: float) -> int:
    """Round half up, with a little slack: float noise in an EMA of a flat series must not flip a dot row."""
    return int(math.floor(v + 0.5 + 1e-9))


def axis_labels(lo: float, hi: float) -> list[str]:
    """Top, middle and bottom labels with one number of decimals, enough to tell them apart."""
    span = hi - lo
    if max(abs(lo), abs(hi)) >= 1e5 or span <= 0:
        return [f"{v:.3g}" for v in (hi, (lo + hi) / 2, lo)]
    decimals = max(0, min(6, 2 - math.floor(math.log10(span))))
    return [f"{v:.{decimals}f}" for v in (hi, (lo + hi) / 2, lo)]


def fmt_step(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else f"{s:g}"


def legend(weight: float) -> Text:
    t = Text()
    t.append("⠒ raw", style=RAW_STYLE)
    t.append("  ")
    t.append(f"━ ema({weight:.2f})", style=EMA_STYLE)
    t.append("  ")
    t.append(f"{EVAL_MARK} eval", style=EVAL_STYLE)
    return t


def _pad_block(lines: list[str], width: int, height: int) -> Text:
    rows = (lines + [""] * height)[:height]
    return Text("\n".join(r.ljust(width)[:width] for r in rows), no_wrap=True, overflow="crop")
