"""Every text colour of the stylesheet against the background it sits on: WCAG contrast of at least 4.5:1."""

from __future__ import annotations

import re
from pathlib import Path

CSS = (Path(__file__).parents[3] / "serving" / "web" / "static" / "style.css").read_text()
VARS = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", CSS))


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_colours_meet_4_5_to_1() -> None:
    white, header, page, notice = "#ffffff", "#f3f4f6", VARS["bg"], "#fef3c7"
    pairs = {
        "muted text on white": (VARS["muted"], white), "muted text on the page": (VARS["muted"], page),
        "table headers": (VARS["muted"], header), "sort links in headers": ("#374151", header),
        "links": (VARS["accent"], white), "links on the page": (VARS["accent"], page),
        "ink": (VARS["ink"], page), "notice": (VARS["ink"], notice),
        "outreach band": (VARS["green"], white), "nurture band": (VARS["yellow"], white),
        "errors": (VARS["red"], white), "green pill": (white, VARS["green"]), "yellow pill": (white, VARS["yellow"]),
        "red pill": (white, VARS["red"]), "grey pill": (white, VARS["grey"]), "buttons": (white, VARS["accent"]),
    }
    low = {name: round(contrast(*pair), 2) for name, pair in pairs.items() if contrast(*pair) < 4.5}
    assert low == {}
    assert "#6b7280" not in CSS  # the grey that measured 4.39:1 on the table headers
