"""Where an account sits among its peers: the same segment at the same snapshot.

A reason that names a volume ("1,132,858 events in 30 days") means nothing to a CSM
until it is ranked: "top 5 % of mid-market accounts". :class:`Peers` keeps, per feature
and segment, the sorted values of a reference book (the scored snapshot) and answers the
share of peers at or beyond a value, vectorised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.reason_catalog import SEGMENT_LABELS

ALL = "*"
# Below this many peers in a segment, a percentile is noise: the whole book ranks instead, and
# a book smaller than that ranks nobody (the reason is then not shown rather than shown unranked).
MIN_PEERS = 20


def peers_label(segment: object) -> str:
    """How the peer group reads: 'mid-market accounts', or 'all accounts' without a segment (the whole
    company's, never "the book": a CSM reads that as their own)."""
    if segment is None or segment == ALL or (isinstance(segment, float) and np.isnan(segment)):
        return "all accounts"
    return f"{SEGMENT_LABELS.get(str(segment), str(segment).replace('_', '-'))} accounts"


@dataclass(frozen=True)
class Peers:
    """Sorted known values per feature and segment (``*``: the whole book) of a reference frame."""

    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def of(cls, frame: pd.DataFrame, features: Iterable[str], segment_column: str = "segment") -> Peers:
        """Peers of every numeric ``features`` column present in ``frame``, grouped by ``segment_column``."""
        names = [f for f in dict.fromkeys(features) if f in frame.columns]
        numeric = frame[names].apply(pd.to_numeric, errors="coerce") if names else pd.DataFrame(index=frame.index)
        segments = (frame[segment_column].astype("string") if segment_column in frame.columns
                    else pd.Series(pd.NA, index=frame.index, dtype="string"))
        groups = {ALL: np.ones(len(frame), dtype=bool)} if len(frame) >= MIN_PEERS else {}
        for seg, count in segments.value_counts().items():
            if count >= MIN_PEERS:
                groups[str(seg)] = (segments == seg).fillna(False).to_numpy(dtype=bool)
        out: dict[str, dict[str, np.ndarray]] = {}
        for name in names:
            column = numeric[name].to_numpy(dtype=float, na_value=np.nan)
            out[name] = {g: np.sort(column[mask & ~np.isnan(column)]) for g, mask in groups.items()}
        return cls(out)

    def groups_of(self, feature: str, segments: Sequence[object]) -> np.ndarray:
        """The peer group of each segment for ``feature``: the segment when it has enough peers, else ``*``."""
        known = [g for g in self.values.get(feature, {}) if g != ALL]
        segments = np.asarray(segments, dtype=object)
        return np.where(pd.Series(segments, dtype=object).isin(known).to_numpy(), segments, ALL).astype(object)

    def share_beyond(self, feature: str, groups: np.ndarray, values: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Per row, % of the row's peer group at or above its value (``high``) or at or below it; NaN when unknown."""
        values = np.asarray(values, dtype=float)
        out = np.full(len(values), np.nan)
        by_group = self.values.get(feature, {})
        for g in dict.fromkeys(groups.tolist()):
            ref = by_group.get(g)
            if ref is None or not len(ref):
                continue
            rows = np.flatnonzero(groups == g)
            v = values[rows]
            at_or_above = len(ref) - np.searchsorted(ref, v, "left")
            at_or_below = np.searchsorted(ref, v, "right")
            out[rows] = 100.0 * np.where(high[rows], at_or_above, at_or_below) / len(ref)
        return out
