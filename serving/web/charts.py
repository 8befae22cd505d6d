"""Server-side SVG charts for the pages (matplotlib, no browser script): inline, offline, accessible.

Each function returns an ``<svg>`` string with a ``<title>`` naming what it shows, or None
when there is nothing to draw. The Agg backend is chosen per figure (no global state).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from matplotlib.figure import Figure

_INK, _MUTED, _ACCENT, _WARN = "#1f2937", "#6b7280", "#2563eb", "#dc2626"


def _svg(fig: Figure, title: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # scalable in the page, announced to screen readers by its title
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img" aria-label="' + title + '"', text, count=1)
    return text.replace(">", f"><title>{title}</title>", 1)


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=(6.4, 2.4), dpi=72)
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(colors=_MUTED, labelsize=9)
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
    return fig, ax


def line_chart(x: Sequence, series: dict[str, Sequence[float]], title: str, y_label: str,
               reference: tuple[float, str] | None = None) -> str | None:
    """Lines over dates (a score history, an NRR trend), with an optional labelled reference line."""
    if not len(x):
        return None
    fig, ax = _figure()
    colours = [_ACCENT, _WARN, _MUTED]
    for (name, values), colour in zip(series.items(), colours, strict=False):
        ax.plot(list(x), list(values), marker="o", markersize=3, linewidth=1.8, color=colour, label=name)
    if reference is not None:
        ax.axhline(reference[0], color=_MUTED, linestyle="--", linewidth=1)
        ax.annotate(reference[1], (0.01, reference[0]), xycoords=("axes fraction", "data"), fontsize=8,
                    color=_MUTED, va="bottom")
    ax.set_ylabel(y_label, color=_INK, fontsize=9)
    if len(series) > 1:
        ax.legend(frameon=False, fontsize=8, loc="best")
    fig.autofmt_xdate(rotation=0, ha="center")
    return _svg(fig, title)


def usage_chart(x: Sequence, events: Sequence[float], limit: Sequence[float | None], title: str) -> str | None:
    """Events per 30 days against the plan's usage limit over the same window."""
    if not len(x):
        return None
    fig, ax = _figure()
    ax.bar(list(x), list(events), width=20, color=_ACCENT, label="events (30 days)")
    if any(v is not None and v == v for v in limit):
        ax.step(list(x), [float("nan") if v is None else v for v in limit], where="mid", color=_WARN,
                linewidth=1.6, label="plan limit (30 days)")
    ax.set_ylabel("events", color=_INK, fontsize=9)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    fig.autofmt_xdate(rotation=0, ha="center")
    return _svg(fig, title)
