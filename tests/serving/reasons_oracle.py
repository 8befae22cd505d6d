"""The reference for the vectorised reasons: the same rule written one account at a time.

:func:`serving.reasons.explain_rows` must give exactly what :func:`explain` gives for each
row; tests compare the two, so the fast path is checked against the plain statement of
the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from serving.reasons import ReasonItem, _missing, reason_text, supports


def explain(
    row: Mapping[str, Any],
    contributions: Mapping[str, Mapping[str, float]],
    specs: Mapping[str, Any] | None = None,
    top_k: int = 5,
    typical: Mapping[str, float] | None = None,
) -> list[ReasonItem]:
    """Top drivers of one account, strongest first.

    ``contributions`` maps an effect (``expansion`` or ``churn_risk``) to that model's
    per-feature contributions. Only features that push *towards* the outcome (positive
    contribution) and whose value reads that way (:func:`supports`, with ``typical``
    the book's median per feature) are drivers; unknown values are skipped because "X is
    unknown" helps no CSM. A feature appears once, under its stronger effect.
    """
    specs, typical = specs or {}, typical or {}
    candidates: list[tuple[float, str, str]] = []
    for effect, contrib in contributions.items():
        for feature, c in contrib.items():
            if c is None or not c > 0 or feature not in row or _missing(row[feature]):
                continue
            if supports(feature, [row[feature]], effect, specs.get(feature), typical.get(feature))[0]:
                candidates.append((float(c), feature, effect))
    candidates.sort(key=lambda t: -t[0])
    out: list[ReasonItem] = []
    seen: set[str] = set()
    for c, feature, effect in candidates:
        if feature in seen:
            continue
        seen.add(feature)
        text = reason_text(feature, row[feature], specs.get(feature)) or feature
        out.append(ReasonItem(text, feature, effect, round(c, 4)))
        if len(out) == top_k:
            break
    return out
