"""Terminal charts as pure functions: a braille loss chart, sparklines, a progress bar.

Hand-written rather than plotext: plotext draws with its own ANSI codes and terminal-size guesses,
which fight Rich's layout; these return Rich Text of exactly the requested size, which is what a
fixed-height panel and a snapshot test need.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

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
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def smoothing_weight(n: int) -> float:
    """EMA weight that suits the series length: ~n/10 points of memory, between 0.3 and 0.95."""
    if n <= 0:
        return 0.5
    return min(0.95, max(0.3, 1.0 - 10.0 / n))


def ema(values: Sequence[Optional[float]], weight: Optional[float] = None) -> list[Optional[float]]:
    """Debiased exponential moving average (TensorBoard's); non-finite inputs are skipped and give None."""
    w = smoothing_weight(sum(1 for v in values if finite(v))) if weight is None else weight
    out: list[Optional[float]] = []
    acc, norm = 0.0, 0.0
    for v in values:
        if not finite(v):
            out.append(None)
            continue
        acc = w * acc + (1 - w) * v
        norm = w * norm + (1 - w)
        out.append(acc / norm)
    return out


def fmt_num(v: Optional[float], digits: int = 4) -> str:
    if not finite(v):
        return "-"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.{max(1, digits - 2)}e}"
    return f"{v:.{digits}g}" if a >= 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".") or "0"


def sparkline(values: Iterable[Optional[float]], width: int, lo: Optional[float] = None,
              hi: Optional[float] = None) -> str:
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


def progress_bar(fraction: Optional[float], width: int) -> str:
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


def loss_chart(steps: Sequence[float], losses: Sequence[Optional[float]], width: int, height: int,
               evals: Sequence[tuple[float, float]] = (), weight: Optional[float] = None) -> Text:
    """Training loss (raw dots, EMA line) with eval points, as exactly `height` lines of `width` cells.

    The last line is the step axis. Non-finite losses are marked with × on the bottom plot row. Too
    small an area, or no finite value yet, gives a one-line message padded to the size.
    """
    width, height = max(0, width), max(0, height)
    pts = [(float(s), v) for s, v in zip(steps, losses) if finite(s)]
    vals = [v for _, v in pts if finite(v)]
    ev = [(float(s), float(v)) for s, v in evals if finite(s) and finite(v)]
    if width < 16 or height < 3 or not (vals or ev):
        msg = "waiting for the first logged loss" if not (vals or ev) else "(too small for a chart)"
        return _pad_block([msg[:width]], width, height)

    smooth = ema([v for _, v in pts], weight)
    y_lo, y_hi = _y_range(vals + [v for _, v in ev] + [v for v in smooth if v is not None])
    all_steps = [s for s, _ in pts] + [s for s, _ in ev]
    x_lo, x_hi = min(all_steps), max(all_steps)

    labels = axis_labels(y_lo, y_hi)
    lab_w = max(len(t) for t in labels)
    plot_w, plot_h = width - lab_w - 1, height - 1
    px_w, px_h = plot_w * 2, plot_h * 4

    def px(s: float) -> int:
        return 0 if x_hi == x_lo else int(round((s - x_lo) / (x_hi - x_lo) * (px_w - 1)))

    def py(v: float) -> int:  # 0 is the top dot row
        frac = (v - y_lo) / (y_hi - y_lo)
        return (px_h - 1) - int(round(min(1.0, max(0.0, frac)) * (px_h - 1)))

    raw = [[0] * plot_w for _ in range(plot_h)]
    line = [[0] * plot_w for _ in range(plot_h)]
    marks: dict[tuple[int, int], tuple[str, str]] = {}

    def dot(grid, x: int, y: int) -> None:
        grid[y // 4][x // 2] |= _DOTS[x % 2][y % 4]

    for s, v in pts:
        if finite(v):
            dot(raw, px(s), py(v))
        else:
            marks[(plot_h - 1, px(s) // 2)] = (BAD_MARK, BAD_STYLE)

    # The EMA is drawn as a connected line through one point per dot column (the last value landing there).
    cols: dict[int, float] = {}
    for (s, _), m in zip(pts, smooth):
        if m is not None:
            cols[px(s)] = m
    prev = None
    for x in sorted(cols):
        y = py(cols[x])
        if prev is None:
            dot(line, x, y)
        else:
            x0, y0 = prev
            at = lambda xi: int(round(y0 + (y - y0) * (xi - x0) / (x - x0)))  # noqa: E731
            for xi in range(x0 + 1, x + 1):  # a vertical run per column keeps steep drops connected
                ya, yb = sorted((at(xi - 1), at(xi)))
                for yy in range(ya, yb + 1):
                    dot(line, xi, yy)
        prev = (x, y)

    for s, v in ev:
        marks[(py(v) // 4, px(s) // 2)] = (EVAL_MARK, EVAL_STYLE)

    out = Text(no_wrap=True, overflow="crop")
    label_rows = {0: labels[0], (plot_h - 1) // 2: labels[1], plot_h - 1: labels[2]}
    for r in range(plot_h):
        lab = label_rows.get(r)
        out.append((lab.rjust(lab_w) + "┤") if lab is not None else " " * lab_w + "│", style="dim")
        for c in range(plot_w):
            if (r, c) in marks:
                ch, st = marks[(r, c)]
                out.append(ch, style=st)
                continue
            bits = raw[r][c] | line[r][c]
            out.append(chr(0x2800 + bits) if bits else " ",
                       style=EMA_STYLE if line[r][c] else RAW_STYLE if bits else None)
        out.append("\n")
    left, right = f"step {fmt_step(x_lo)}", f"{fmt_step(x_hi)}"
    gap = plot_w - len(left) - len(right)
    axis = " " * lab_w + "└" + (left + " " * gap + right if gap >= 1 else left[:plot_w].ljust(plot_w))
    out.append(axis, style="dim")
    return out


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
