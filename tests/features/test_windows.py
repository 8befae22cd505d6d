"""Window segments and key masks: the building blocks that keep the usage and adoption passes small."""

from __future__ import annotations

import importlib.util
import os
import random

import ibis
import pandas as pd
import pytest

from features.adoption import MASK_BITS, _breadth, with_popcounts
from features.usage import MAX_WINDOW_DAYS, WINDOW_EDGES, window_segments

# make test installs DataFusion; in CI a missing engine is a failure (as in test_backends), not a skip
_NO_DATAFUSION = not os.environ.get("CI") and importlib.util.find_spec("datafusion") is None
BACKENDS = ["duckdb", pytest.param("datafusion", marks=pytest.mark.skipif(_NO_DATAFUSION, reason="no datafusion"))]


def _run(backend: str, expr) -> pd.DataFrame:
    con = ibis.duckdb.connect() if backend == "duckdb" else ibis.datafusion.connect()
    return con.to_pyarrow(expr).to_pandas()


@pytest.mark.parametrize("as_of_days", [
    [20_000],                                     # one scoring date
    [20_000 + 30 * i + i % 3 for i in range(12)],  # roughly monthly, uneven
    [20_000 + 7 * i for i in range(20)],           # weekly: every day lies in many windows
    [20_000, 20_001, 20_400],                      # adjacent dates and a long gap
])
def test_every_window_is_exactly_the_segments_younger_than_it(as_of_days):
    day_map, seg_snaps = (t.to_pandas() for t in window_segments(as_of_days))
    assert day_map.day.is_unique
    for d in as_of_days:
        mine = seg_snaps[seg_snaps.as_of_day == d]
        for w in WINDOW_EDGES[1:]:
            segs = set(mine.seg_end[mine.seg_age < w])
            days = set(day_map.day[day_map.seg_end.isin(segs)])
            assert days == set(range(d - w + 1, d + 1)), (d, w)
    assert (seg_snaps.seg_age >= 0).all() and (seg_snaps.seg_age < MAX_WINDOW_DAYS).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_popcount_counts_set_bits(backend):
    rng = random.Random(7)
    values = [0, 1, 2**MASK_BITS - 1, 2**61, 0b1011] + [rng.getrandbits(MASK_BITS) for _ in range(200)]
    t = ibis.memtable(pd.DataFrame({"m": pd.Series(values, dtype="int64")}))
    got = _run(backend, with_popcounts(t, {"n": "m"}).order_by("m"))
    assert got.n.tolist() == [bin(v).count("1") for v in sorted(values)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_breadth_and_gated_use_span_several_mask_words(backend):
    """A catalog of 150 keys needs three 62-bit words; the answer is worked out with plain sets."""
    keys = [f"k{i:03d}" for i in range(150)]
    basic, pro = keys[:70], keys[:140]  # 'pro' adds keys 70-139; keys 140-149 belong to another product
    plan_features = pd.DataFrame(
        [("p", "basic", k) for k in basic] + [("p", "pro", k) for k in pro] + [("q", "q1", k) for k in keys[140:]],
        columns=["product_id", "plan", "feature_key"],
    )
    used_keys = {"A": keys[0:5] + keys[60:66] + keys[100:103] + keys[145:147], "B": keys[:140] + ["unknown"]}
    used = pd.DataFrame(
        [(a, 1, k, float(i + 1)) for a, ks in used_keys.items() for i, k in enumerate(ks)],
        columns=["account_id", "as_of_day", "feature_key", "events"],
    )
    periods = pd.DataFrame([("A", 1, "p", "basic"), ("B", 1, "p", "pro")],
                           columns=["account_id", "as_of_day", "product_id", "plan"])
    got = _run(backend, _breadth(ibis.memtable(used), ibis.memtable(periods), ibis.memtable(plan_features)))
    got = got.set_index("account_id")
    # A (basic: 70 keys) used 11 of them; keys 100-102 are gated ('pro' only), 145-146 belong to product q, not held
    assert got.loc["A", "feature_breadth_pct"] == pytest.approx(11 / 70 * 100)
    a_events = dict(zip(used[used.account_id == "A"].feature_key, used[used.account_id == "A"].events))
    assert got.loc["A", "gated_feature_events_30d"] == sum(a_events[k] for k in keys[100:103])
    assert got.loc["B", "feature_breadth_pct"] == pytest.approx(100.0)
    assert pd.isna(got.loc["B", "gated_feature_events_30d"])
