"""Server-side SVG charts for the pages, written element by element (no browser script, no plotting library).

Every text that reaches the SVG (title, legend, tick labels) goes through :func:`esc`, so a
title holding an account id full of markup stays text. Charts cost well under a millisecond
to write; the pages still keep them per account and snapshot. Axes are readable at any span:
with under ~2 months of points the ticks are days, otherwise months at a step that keeps six
labels at most; the legend sits above the plot, never over the data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from html import escape

import pandas as pd

_INK, _MUTED, _ACCENT, _WARN, _GRID = "#1f2937", "#4b5563", "#2563eb", "#dc2626", "#e5e7eb"
W, H = 560, 250
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 34, 30
FONT = 13


def esc(value: object) -> str:
    """Text or attribute value for the SVG: every markup character escaped."""
    return escape(str(value), quote=True)


def _days(x: Sequence) -> list[dt.date]:
    return [pd.Timestamp(v).date() for v in x]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (about ``count`` of them)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count - 1)
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= step * m)
    start = math.floor(low / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < high - step * 1e-9:  # the last tick covers the highest value
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def date_ticks(first: dt.date, last: dt.date, most: int = 6) -> list[tuple[dt.date, str]]:
    """Dates to label on the x axis and their labels: days for short spans, months (stepped) otherwise."""
    span = (last - first).days
    if span <= 62:
        step = max(1, math.ceil(max(span, 1) / (most - 1)))
        days = [first + dt.timedelta(days=d) for d in range(0, span + 1, step)]
        return [(d, f"{d.day} {d:%b}") for d in days]
    months = (last.year - first.year) * 12 + last.month - first.month
    step = max(1, math.ceil(months / (most - 1)))
    out, index = [], first.year * 12 + first.month  # first month start after ``first``
    while True:
        day = dt.date(index // 12, index % 12 + 1, 1)
        if day > last:
            break
        out.append((day, f"{day:%b} {day:%y}" if step < 12 else f"{day:%Y}"))
        index += step
    return out or [(first, f"{first:%b} {first:%y}")]


def _format(value: float) -> str:
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:g}M"
    if size >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


class _Frame:
    """The axes of one chart: scales from data to pixels and the SVG pieces written so far."""

    def __init__(self, first: dt.date, last: dt.date, low: float, high: float, y_label: str) -> None:
        self.first, self.span = first, max(1, (last - first).days)
        self.y = nice_ticks(low, high)
        self.low, self.high = self.y[0], self.y[-1]
        self.parts: list[str] = []
        self.y_label = y_label
        self.last = last

    def px(self, day: dt.date) -> float:
        return LEFT + (W - LEFT - RIGHT) * (day - self.first).days / self.span

    def py(self, value: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - (value - self.low) / ((self.high - self.low) or 1))

    def axes(self) -> None:
        for v in self.y:
            y = self.py(v)
            self.parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>')
            self.parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{_MUTED}" '
                              f'font-size="{FONT}">{esc(_format(v))}</text>')
        self.parts.append(f'<text x="4" y="{TOP - 10}" fill="{_MUTED}" font-size="{FONT}">{esc(self.y_label)}</text>')
        base = H - BOTTOM
        self.parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{base}" y2="{base}" stroke="{_MUTED}"/>')
        for day, label in date_ticks(self.first, self.last):
            x = self.px(day)
            anchor = "start" if x < LEFT + 20 else "end" if x > W - RIGHT - 20 else "middle"
            self.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" stroke="{_MUTED}"/>')
            self.parts.append(f'<text x="{x:.1f}" y="{base + 18}" text-anchor="{anchor}" fill="{_MUTED}" '
                              f'font-size="{FONT}">{esc(label)}</text>')

    def legend(self, items: list[tuple[str, str]]) -> None:
        x = W - RIGHT
        for name, colour in reversed(items):  # right-aligned above the plot
            width = 8 * len(name) + 24
            x -= width
            self.parts.append(f'<rect x="{x}" y="{TOP - 22}" width="12" height="12" fill="{colour}"/>')
            self.parts.append(f'<text x="{x + 16}" y="{TOP - 12}" fill="{_INK}" font-size="{FONT}">{esc(name)}</text>')

    def svg(self, title: str) -> str:
        t = esc(title)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" '
                f'font-family="system-ui, sans-serif"><title>{t}</title>{"".join(self.parts)}</svg>')


def _finite(values: Sequence) -> list[float]:
    return [float(v) for v in values if v is not None and v == v]


def line_chart(x: Sequence, series: dict[str, Sequence[float]], title: str, y_label: str,
               reference: tuple[float, str] | None = None) -> str | None:
    """Lines over dates (a score history, an NRR trend), with an optional labelled reference line."""
    if not len(x):
        return None
    days = _days(x)
    series = {name: ys for name, ys in series.items() if _finite(ys)}  # a series with no value gets no legend
    values = [v for s in series.values() for v in _finite(s)] + ([reference[0]] if reference else [])
    if not values:
        return None
    frame = _Frame(min(days), max(days), min(values), max(values), y_label)
    frame.axes()
    if reference is not None:
        y = frame.py(reference[0])
        frame.parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_MUTED}" '
                           f'stroke-dasharray="5 4"/>')
        frame.parts.append(f'<text x="{W - RIGHT}" y="{y - 5:.1f}" text-anchor="end" fill="{_MUTED}" '
                           f'font-size="{FONT}">{esc(reference[1])}</text>')
    colours = [_ACCENT, _WARN, _MUTED]
    for (name, ys), colour in zip(series.items(), colours, strict=False):
        points = [(frame.px(d), frame.py(float(v))) for d, v in zip(days, ys, strict=True) if v is not None and v == v]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        frame.parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        frame.parts.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points)
    frame.legend(list(zip(series, colours, strict=False)))
    return frame.svg(title)


def usage_chart(x: Sequence, events: Sequence[float], limit: Sequence[float | None], title: str) -> str | None:
    """Events per month (bars) against the plan's monthly limit (a step line)."""
    if not len(x):
        return None
    days = _days(x)
    limits = [None if v is None or v != v else float(v) for v in limit]
    top = max(_finite(events) + [v for v in limits if v is not None] + [1.0])
    last = max(days)
    month_end = (pd.Timestamp(last) + pd.offsets.MonthEnd(0)).date()
    frame = _Frame(min(days), month_end, 0.0, top, "events")
    frame.axes()
    slot = (W - LEFT - RIGHT) * 28 / frame.span
    items = [("events", _ACCENT)]
    for day, value in zip(days, events, strict=True):
        if value is None or value != value:
            continue
        x0, y0 = frame.px(day) + slot * 0.1, frame.py(float(value))
        frame.parts.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(1.0, slot * 0.8):.1f}" '
                           f'height="{frame.py(0.0) - y0:.1f}" fill="{_ACCENT}"/>')
    if any(v is not None for v in limits):
        items.append(("plan limit", _WARN))
        for day, value in zip(days, limits, strict=True):
            if value is not None:
                y = frame.py(value)
                frame.parts.append(f'<line x1="{frame.px(day):.1f}" x2="{frame.px(day) + slot:.1f}" y1="{y:.1f}" '
                                   f'y2="{y:.1f}" stroke="{_WARN}" stroke-width="2.5"/>')
    frame.legend(items)
    return frame.svg(title)
