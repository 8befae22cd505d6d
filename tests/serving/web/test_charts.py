"""The SVG charts: every text escaped, axes readable with one month of history and with 24."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd

from serving.web.charts import date_ticks, line_chart, nice_ticks, usage_chart

NASTY = '"><img src=x onerror=alert(1)><meta http-equiv=refresh content="0;url=//evil"> a&b \\ \\1 \\g<0>'


def _labels(svg: str) -> list[str]:
    return re.findall(r'<text x="[\d.]+" y="238" text-anchor="\w+" fill="#4b5563" font-size="13">([^<]+)</text>', svg)


def test_a_title_full_of_markup_stays_text() -> None:
    svg = line_chart(pd.date_range("2026-01-31", periods=3, freq="ME"), {NASTY: [1, 2, 3]}, NASTY, NASTY)
    assert "<img" not in svg and "<meta" not in svg and svg.count("<svg") == 1
    assert "&lt;img src=x onerror=alert(1)&gt;" in svg and "&quot;&gt;" in svg and "\\g&lt;0&gt;" in svg
    usage = usage_chart(pd.date_range("2026-01-01", periods=2, freq="MS"), [5.0, 7.0], [None, 10.0], NASTY)
    assert "<img" not in usage and 'aria-label="&quot;&gt;&lt;img' in usage


def test_everything_drawn_stays_inside_the_chart() -> None:
    svg = usage_chart([pd.Timestamp("2026-06-01")], [617.0], [125_000.0], "one month, a high limit")
    ys = [float(y) for y in re.findall(r' y[12]?="(-?[\d.]+)"', svg)]
    assert ys and min(ys) >= 0 and max(ys) <= 250


def test_axes_are_readable_with_one_month_and_with_24_months() -> None:
    month = pd.date_range("2026-06-01", "2026-06-30", freq="D")
    short = line_chart(month, {"readiness": range(30)}, "t", "points")
    labels = _labels(short)
    assert 2 <= len(labels) <= 6 and all(re.fullmatch(r"\d{1,2} Jun", label) for label in labels)
    years = pd.date_range("2024-07-31", periods=24, freq="ME")
    long = line_chart(years, {"readiness": range(24), "churn risk %": range(24)}, "t", "points")
    labels = _labels(long)
    assert 3 <= len(labels) <= 6 and len(set(labels)) == len(labels)
    xs = [float(x) for x in re.findall(r'<text x="([\d.]+)" y="238" text-anchor', long)]
    assert all(b - a >= 60 for a, b in zip(xs, xs[1:], strict=False))  # labels never overlap
    # the legend sits above the plot area (y below the top margin), never over a bar or a line
    assert all(float(y) < 34 for y in re.findall(r'<rect x="[\d.]+" y="([\d.]+)" width="12"', long))


def test_ticks_cover_the_data_with_round_values() -> None:
    assert nice_ticks(3.2, 97.5) == [0, 25, 50, 75, 100]
    assert nice_ticks(5, 5)[0] <= 5 <= nice_ticks(5, 5)[-1]
    assert nice_ticks(0, 125_000)[-1] >= 125_000 and nice_ticks(0, 100)[-1] == 100
    ticks = date_ticks(dt.date(2024, 7, 31), dt.date(2026, 6, 30))
    assert len(ticks) <= 6 and all(d.day == 1 for d, _ in ticks)
    assert line_chart([], {"a": []}, "t", "y") is None and usage_chart([], [], [], "t") is None


def test_a_series_without_values_is_left_out_of_the_legend() -> None:
    svg = line_chart(pd.date_range("2026-01-31", periods=3, freq="ME"),
                     {"readiness": [50, 60, 70], "churn risk %": [float("nan")] * 3}, "t", "points")
    assert ">readiness</text>" in svg and "churn risk" not in svg
