"""The dashboard's panels: pure functions from a DashboardState (and a size) to Rich renderables.

Every panel is built eagerly (Text objects, fixed heights), so a frame built under a lock can be drawn
later by Rich's refresh thread while training keeps changing the state.
"""
from __future__ import annotations

import io
import time

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from wizard.monitor import charts
from wizard.monitor.charts import finite, fmt_num
from wizard.monitor.reporting import fmt_duration
from wizard.monitor.state import DashboardState

STATUS_STYLE = {"running": "blue", "starting": "blue", "finished": "green", "failed": "red",
                "interrupted": "yellow", "stopped": "red"}
LEVEL_STYLE = {"warning": "yellow", "error": "bold red", "info": ""}
NO_GPU_PREFIX = "no GPU panel:"   # the fallback panel's reason line starts with this
HEADER_H = 4
_MEASURE = Console(file=io.StringIO(), width=200, color_system=None)  # only for measuring wrapped text


def _line(*parts, style: str = "") -> Text:
    """One non-wrapping line; parts are str or (str, style)."""
    t = Text(no_wrap=True, overflow="ellipsis", style=style)
    for p in parts:
        if isinstance(p, tuple):
            t.append(p[0], style=p[1])
        elif isinstance(p, Text):
            t.append_text(p)
        else:
            t.append(p)
    return t


def _two_sided(left: Text, right: Text, width: int) -> Text:
    """`left` then `right` flush to the right edge; left is cut first when both do not fit."""
    room = width - right.cell_len - 1
    if room < 8:
        left.truncate(width, overflow="ellipsis")
        return left
    left.truncate(room, overflow="ellipsis")
    out = left.copy()
    out.append(" " * (width - left.cell_len - right.cell_len))
    out.append_text(right)
    out.no_wrap, out.overflow = True, "ellipsis"
    return out


def _lines(lines: list[Text]) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    for i, ln in enumerate(lines):
        if i:
            out.append("\n")
        out.append_text(ln)
    return out


def _panel(body, title: str, width: int, height: int, style: str = "", subtitle=None) -> Panel:
    return Panel(body, title=title, title_align="left", subtitle=subtitle, subtitle_align="right",
                 width=width, height=height, border_style=style or "dim", padding=(0, 1))


def _gb(v) -> str:
    return f"{v:.1f}" if finite(v) else "?"


def _fixed(v, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if finite(v) else "-"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


class Prerendered:
    """A renderable already turned into lines of segments (style objects, no colour codes yet)."""

    def __init__(self, renderable, width: int):
        self.width = width
        lines = _MEASURE.render_lines(renderable, _MEASURE.options.update(width=width, height=None), pad=True)
        if isinstance(renderable, Text):  # Text ends with its own newline: no empty line after it
            lines = lines[:renderable.plain.count("\n") + 1]
        self.lines = lines

    def __rich_console__(self, console, options):
        newline = Segment.line()
        for line in self.lines:
            yield from line
            yield newline

    def __rich_measure__(self, console, options):
        return Measurement(self.width, self.width)


# -- header ----------------------------------------------------------------------------------------------
def header_panel(st: DashboardState, width: int) -> Panel:
    iw = width - 4
    style = STATUS_STYLE.get(st.status, "blue")
    left = _line((st.name or "run", "bold"), " · ", st.model or "?", " · ",
                 f"{st.task or '?'}/{st.method or '?'}", " · ", (st.device or "", "dim"))
    right = _line((st.status, f"bold {style}"))
    stale = st.stale_s()
    if stale is not None and stale > 60:
        right = _line((f"no update for {_ago(stale)} · ", "yellow"), (st.status, f"bold {style}"))
    line1 = _two_sided(left, right, iw)

    total = st.total_steps or 0
    frac = st.step / total if total else None
    step_txt = f"step {st.step}/{total or '?'}"
    pct = f" {100 * frac:3.0f}%" if frac is not None else ""
    tail = []
    if st.epoch is not None:
        tail.append(f"epoch {st.epoch:.2f}")
    tail.append(f"elapsed {fmt_duration(st.elapsed())}")
    if not st.done:
        tail.append(f"ETA {fmt_duration(st.eta())}")
    tps = st.last.get("tokens_per_s")
    if finite(tps):
        tail.append(f"{tps:,.0f} tok/s")
    tail_txt = "   ".join(tail)
    bar_w = iw - len(step_txt) - len(pct) - len(tail_txt) - 5
    if bar_w >= 8:
        line2 = _line(step_txt, " ", (charts.progress_bar(frac, bar_w), style), pct, "   ", tail_txt)
    else:
        line2 = _line(step_txt, pct, "   ", tail_txt)
    return _panel(_lines([line1, line2]), "tune-wizard", width, HEADER_H, style)


# -- loss ------------------------------------------------------------------------------------------------
def loss_stats(st: DashboardState, width: int = 10_000) -> list[Text]:
    _, smooth = st.smoothed()
    last_ema = next((v for v in reversed(smooth) if v is not None), None)
    parts: list = [("loss ", "dim"), (fmt_num(st.final_loss()), "bold"), ("  ema ", "dim"),
                   (fmt_num(last_ema), charts.EMA_STYLE)]
    if st.evals:
        parts += [("  eval ", "dim"), (fmt_num(st.evals[-1][1]), charts.EVAL_STYLE)]
    best = st.best_eval()
    if best is not None:
        at = f" @ {best[1]:g}" if finite(best[1]) else ""
        parts += [("  best ", "dim"), f"{fmt_num(best[0])}{at}"]
    bad = st.n_bad
    if bad:
        parts += [("  ", ""), (f"{bad} non-finite", charts.BAD_STYLE)]
    lr, gn = st.last.get("lr"), st.last.get("grad_norm")
    more = [("lr ", "dim"), f"{lr:.2e}" if finite(lr) else "-", ("  grad norm ", "dim"), fmt_num(gn, 3)]
    one = _line(*parts, "  ", *more)
    lines = [one] if one.cell_len <= width else [_line(*parts), _line(*more)]  # narrow: two lines
    if st.rewards:
        r = st.rewards
        lines.append(_line(
            ("rewards chosen ", "dim"), fmt_num(r.get("rewards/chosen"), 3),
            ("  rejected ", "dim"), fmt_num(r.get("rewards/rejected"), 3),
            ("  margin ", "dim"), (fmt_num(r.get("rewards/margins"), 3), "bold"), " ",
            (charts.sparkline(st.margins, 12), "green"),
            ("  accuracy ", "dim"), (_fixed(r.get("rewards/accuracies")), "bold"), " ",
            (charts.sparkline(st.accuracies, 12, 0.0, 1.0), "green")))
    return lines


def loss_panel(st: DashboardState, width: int, height: int) -> Panel:
    iw, ih = width - 4, height - 2
    stats = loss_stats(st, iw)
    chart_h = ih - len(stats)
    weight, _ = st.smoothed()
    if chart_h >= 3:
        # drawn into segments once per metrics row; frames in between only copy them
        chart = st.cached(("chart", iw, chart_h), lambda: Prerendered(charts.chart_from_buckets(
            st.buckets.buckets, iw, chart_h, evals=st.evals), iw))
        body = Group(chart, _lines(stats))
    else:  # too short for a chart: a sparkline keeps the trend visible
        spark = _line(("loss ", "dim"), (charts.sparkline(st.losses, max(0, iw - 5)).lstrip(), charts.RAW_STYLE))
        body = _lines(([spark] if ih > len(stats) else []) + stats)
    return _panel(body, "loss", width, height, subtitle=charts.legend(weight))


# -- GPU / CPU -------------------------------------------------------------------------------------------
def _gpu_rows(g: dict, hist: dict, iw: int, compact: bool) -> list[Text]:
    util, used, total = g.get("util"), g.get("mem_used_gb"), g.get("mem_total_gb")
    mem_pct = 100.0 * used / total if finite(used) and finite(total) and total else None
    mem_style = "bold red" if finite(mem_pct) and mem_pct >= 95 else "bold"
    temp = f"{g['temp_c']:.0f}°C" if finite(g.get("temp_c")) else "?°C"
    power = f"{g['power_w']:.0f}" if finite(g.get("power_w")) else "?"
    limit = f"/{g['power_limit_w']:.0f}" if finite(g.get("power_limit_w")) else ""
    clock = f"{g['sm_clock_mhz']:.0f} MHz" if finite(g.get("sm_clock_mhz")) else "? MHz"
    throttle = [t for t in (g.get("throttle") or []) if t != "idle"]
    util_txt = f"{util:3.0f}%" if finite(util) else "  ?%"
    name = str(g.get("name") or "GPU")
    if compact:
        short = name.replace("NVIDIA ", "")
        fixed = f"{g.get('index', 0)} {short[:14]:<14} {util_txt}  {_gb(used)}/{_gb(total)} GiB {temp} {power}W"
        spark_w = max(0, iw - len(fixed) - 2)
        return [_line(f"{g.get('index', 0)} ", (f"{short[:14]:<14}", "bold"), " ", (util_txt, "bold"), " ",
                      (charts.sparkline(hist.get("util", ()), spark_w, 0, 100), "green"), " ",
                      (f"{_gb(used)}/{_gb(total)} GiB", mem_style), f" {temp} {power}W")]
    right = _line(temp, "  ", f"{power}{limit} W", "  ", clock,
                  *(("  throttle ", "dim"), (",".join(throttle), "yellow")) if throttle else ())
    line1 = _two_sided(_line(f"{g.get('index', 0)} ", (name, "bold")), right, iw)
    mem_txt = f"{_gb(used)}/{_gb(total)} GiB {mem_pct:3.0f}%" if finite(mem_pct) else f"{_gb(used)} GiB"
    spark_w = max(0, (iw - len("  util ") - len(util_txt) - len("   mem ") - len(mem_txt) - 2) // 2)
    line2 = _line(("  util ", "dim"), (util_txt, "bold"), " ",
                  (charts.sparkline(hist.get("util", ()), spark_w, 0, 100), "green"),
                  ("   mem ", "dim"), (mem_txt, mem_style), " ",
                  (charts.sparkline(hist.get("mem", ()), spark_w, 0, 100), "blue"))
    return [line1, line2]


def gpu_panel_height(st: DashboardState, max_height: int | None = None) -> tuple[int, bool]:
    """(height, compact) of the GPU/CPU panel within max_height."""
    if not st.gpus:
        return 5, False
    full = 2 * len(st.gpus) + 2
    if max_height is None or full <= max_height:
        return full, False
    return len(st.gpus) + 2, True


def gpu_panel(st: DashboardState, width: int, max_height: int | None = None) -> Panel:
    iw = width - 4
    height, compact = gpu_panel_height(st, max_height)
    if not st.gpus:
        return system_panel(st, width)
    rows: list[Text] = []
    for g in st.gpus:
        rows += _gpu_rows(g, st.gpu_hist.get(g.get("index", 0), {}), iw, compact)
    title = "GPU" if len(st.gpus) == 1 else f"GPUs ({len(st.gpus)})"
    age = st.now - st.gpu_time if st.gpu_time else None
    subtitle = Text(f"last sample {_ago(age)} ago", style="yellow") if age is not None and age > 10 else None
    return _panel(_lines(rows), title, width, height, subtitle=subtitle)


def system_panel(st: DashboardState, width: int) -> Panel:
    iw = width - 4
    s = st.system or {}
    cpu, n = s.get("cpu_percent"), s.get("cpu_count")
    used, total, rss = s.get("ram_used_gb"), s.get("ram_total_gb"), s.get("rss_gb")
    cpu_txt = f"{cpu:3.0f}%" if finite(cpu) else "  ?%"
    ram_pct = 100.0 * used / total if finite(used) and finite(total) and total else None
    ram_txt = f"{_gb(used)}/{_gb(total)} GiB" + (f" {ram_pct:3.0f}%" if finite(ram_pct) else "")
    lead = f"{cpu_txt} of {n} cores" if n else cpu_txt
    rss_txt = f"{rss:.2f} GiB" if finite(rss) else ""
    spark_w = max(0, min(60, iw - 7 - max(len(lead), len(ram_txt)) - (len(rss_txt) + 15 if rss_txt else 0)))
    where = "this machine" if st.source == "watch" else ""
    line1 = _line(("CPU  ", "dim"), (lead.ljust(len(ram_txt)), "bold"), "  ",
                  (charts.sparkline(st.cpu_hist, spark_w, 0, 100), "green"))
    line2 = _line(("RAM  ", "dim"), (ram_txt.ljust(len(lead)), "bold"), "  ",
                  (charts.sparkline(st.ram_hist, spark_w, 0, 100), "blue"),
                  *((("  this process ", "dim"), rss_txt) if rss_txt else ()))
    reason = st.gpu_reason or "no GPU samples yet"
    line3 = _line(f"{NO_GPU_PREFIX} {reason}", style="yellow")
    title = "CPU / RAM" + (f" ({where})" if where else "")
    return _panel(_lines([line1, line2, line3]), title, width, 5)


# -- log tail --------------------------------------------------------------------------------------------
def log_panel(st: DashboardState, width: int, height: int) -> Panel:
    n = max(0, height - 2)
    events = list(st.events)[-n:] if n else []
    rows = []
    for ev in events:
        stamp = time.strftime("%H:%M:%S", time.localtime(ev.time))
        tag = f"{ev.level} " if ev.level in ("warning", "error") else ""
        rows.append(_line((stamp + " ", "dim"), (tag, LEVEL_STYLE.get(ev.level, "")), ev.text))
    if not rows:
        rows = [_line(("no events yet", "dim"))]
    return _panel(_lines(rows), "log", width, height)


# -- summary ---------------------------------------------------------------------------------------------
def summary_lines(st: DashboardState, width: int = 10_000) -> list[Text]:
    f = st.final or {}
    lines: list[Text] = []
    if st.message:
        lines.append(Text(st.message, style=STATUS_STYLE.get(st.status, "")))
    best = st.best_eval()
    losses = Text()
    losses.append("final loss ", style="dim")
    losses.append(fmt_num(st.final_loss()), style="bold")
    losses.append("   best eval loss ", style="dim")
    losses.append(fmt_num(best[0]) if best else "-", style="bold")
    if best and finite(best[1]):
        losses.append(f" (step {best[1]:g})", style="dim")
    cost = Text()
    cost.append("time ", style="dim")
    cost.append(fmt_duration(st.elapsed()), style="bold")
    cost.append("   peak memory ", style="dim")
    peak = st.peak_memory()
    cost.append(f"{peak:.2f} GiB" if finite(peak) else "-", style="bold")
    if losses.cell_len + 3 + cost.cell_len <= width:
        lines.append(Text.assemble(losses, "   ", cost))
    else:  # narrow: two lines rather than a figure split across them
        lines += [losses, cost]
    adapter = f.get("adapter_dir") or st.adapter_dir
    if adapter:
        lines.append(Text.assemble(("adapter     ", "dim"), (str(adapter), "bold")))
    if st.run_dir:
        lines.append(Text.assemble(("run folder  ", "dim"), str(st.run_dir)))
    commands = f.get("next_commands") or []
    if commands:
        lines.append(Text("next:", style="dim"))
        for cmd in commands:
            lines.append(Text.assemble("  ", (str(cmd), "bold cyan")))
    return lines


def summary_panel(st: DashboardState, width: int) -> tuple[Panel, int]:
    iw = width - 4
    lines = summary_lines(st, iw)
    body = Text(overflow="fold")  # long paths and commands fold, never cut: users copy them
    for i, ln in enumerate(lines):
        if i:
            body.append("\n")
        body.append_text(ln)
    height = 2 + len(body.wrap(_MEASURE, iw))
    style = STATUS_STYLE.get(st.status, "blue")
    return _panel(body, f"run {st.status}", width, height, style), height


# -- the frame -------------------------------------------------------------------------------------------
def render(st: DashboardState, width: int | None = None, height: int | None = None) -> RenderableType:
    """The whole dashboard at exactly width x (at most) height cells."""
    W, H = max(40, width or 100), max(8, height or 40)
    parts: list = [header_panel(st, W)]
    room = H - HEADER_H
    summary, summary_h = summary_panel(st, W) if st.done else (None, 0)
    if summary is not None and summary_h > room:
        summary, summary_h = None, 0  # a tiny terminal: the caller prints the summary after the frame
    room -= summary_h

    if W >= 150:  # side by side: loss on the left, GPUs and log on the right
        left_w = W * 55 // 100
        right_w = W - left_w
        gpu_h, _ = gpu_panel_height(st, max(3, room - 3))
        right: list = []
        if gpu_h <= room:
            right.append(gpu_panel(st, right_w, max(3, room - 3)))
            if room - gpu_h >= 3:
                right.append(log_panel(st, right_w, room - gpu_h))
        grid = Table.grid(padding=0)
        grid.add_column(width=left_w)
        grid.add_column(width=right_w)
        if room >= 5:
            grid.add_row(loss_panel(st, left_w, room), Group(*right))
            parts.append(grid)
    else:
        gpu_h, compact = gpu_panel_height(st, max(3, room - 8))
        if gpu_h > room or (st.done and room - gpu_h < 8):  # after the run the loss matters more
            gpu_h = 0
        rest = room - gpu_h
        log_h = min(12, max(5, rest // 3)) if rest >= 8 + 5 else 0
        loss_h = rest - log_h
        if loss_h >= 5:
            parts.append(loss_panel(st, W, loss_h))
        if gpu_h:
            parts.append(gpu_panel(st, W, max(3, room - 8)))
        if log_h:
            parts.append(log_panel(st, W, log_h))
    if summary is not None:
        parts.append(summary)
    return Group(*parts)
