"""Movements on hand-built subscription histories, one per movement kind."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pytest

from features.movements import account_mrr_at, movements, product_movements

D = dt.date


def subs(*rows: tuple) -> ibis.Table:
    """Rows of (account, product, plan, seats, mrr, valid_from, valid_to)."""
    cols = ["account_id", "product_id", "plan", "seats", "mrr", "valid_from", "valid_to"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["valid_from"] = pd.to_datetime(frame["valid_from"]).dt.date
    frame["valid_to"] = pd.to_datetime(frame["valid_to"]).dt.date
    frame["renewal_date"] = None
    frame["usage_limit"] = None
    schema = {"account_id": "string", "product_id": "string", "plan": "string", "seats": "int64",
              "mrr": "float64", "valid_from": "date", "valid_to": "date", "renewal_date": "date",
              "usage_limit": "float64"}
    return ibis.memtable(frame, schema=schema)


def run(expr: ibis.Table, keys: tuple[str, ...] = ("account_id", "date")) -> pd.DataFrame:
    out = expr.execute().sort_values(list(keys)).reset_index(drop=True)
    out["date"] = out["date"].dt.date
    return out


def records(frame: pd.DataFrame, cols: list[str]) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame[cols].itertuples(index=False)]


COLS = ["date", "movement", "mrr_before", "mrr_after", "expansion_kind"]


def test_new_seats_then_churn_at_valid_to_with_nothing_after() -> None:
    t = subs(
        ("a", "core", "pro", 10, 1000.0, "2024-01-01", "2024-04-01"),
        ("a", "core", "pro", 15, 1500.0, "2024-04-01", "2024-09-01"),
    )
    got = records(run(movements(t)), COLS)
    assert got == [
        (D(2024, 1, 1), "new", 0.0, 1000.0, None),
        (D(2024, 4, 1), "expansion", 1000.0, 1500.0, "seats"),
        (D(2024, 9, 1), "churn", 1500.0, 0.0, None),
    ]


def test_cross_sell_and_price_and_contraction() -> None:
    t = subs(
        ("a", "core", "pro", 10, 1000.0, "2024-01-01", "2024-06-01"),
        ("a", "core", "pro", 10, 1100.0, "2024-06-01", "2024-08-01"),
        ("a", "core", "pro", 8, 880.0, "2024-08-01", None),
        ("a", "addon", "basic", 5, 200.0, "2024-03-01", None),
    )
    got = records(run(movements(t)), COLS)
    assert got == [
        (D(2024, 1, 1), "new", 0.0, 1000.0, None),
        (D(2024, 3, 1), "expansion", 1000.0, 1200.0, "cross_sell"),
        (D(2024, 6, 1), "expansion", 1200.0, 1300.0, "price"),
        (D(2024, 8, 1), "contraction", 1300.0, 1080.0, None),
    ]


def test_upgrade_on_the_same_day_as_another_products_downgrade() -> None:
    t = subs(
        ("a", "core", "basic", 10, 500.0, "2024-01-01", "2024-05-01"),
        ("a", "core", "pro", 10, 900.0, "2024-05-01", None),
        ("a", "addon", "plus", 10, 400.0, "2024-01-01", "2024-05-01"),
        ("a", "addon", "plus", 5, 200.0, "2024-05-01", None),
    )
    got = records(run(movements(t)), COLS)
    assert got == [
        (D(2024, 1, 1), "new", 0.0, 900.0, None),
        (D(2024, 5, 1), "expansion", 900.0, 1100.0, "plan_upgrade"),
    ]
    per_product = run(product_movements(t), ("product_id", "date"))
    may = per_product[per_product["date"] == D(2024, 5, 1)].set_index("product_id")
    assert may.loc["core", "movement"] == "expansion" and may.loc["core", "expansion_kind"] == "plan_upgrade"
    assert may.loc["addon", "movement"] == "contraction" and pd.isna(may.loc["addon", "expansion_kind"])
    assert may.loc["addon", "mrr_delta"] == -200.0


def test_upgrade_offset_by_a_larger_downgrade_is_a_contraction() -> None:
    t = subs(
        ("a", "core", "basic", 10, 500.0, "2024-01-01", "2024-05-01"),
        ("a", "core", "pro", 10, 600.0, "2024-05-01", None),
        ("a", "addon", "plus", 10, 400.0, "2024-01-01", "2024-05-01"),
        ("a", "addon", "plus", 5, 200.0, "2024-05-01", None),
    )
    got = records(run(movements(t)), COLS)
    assert got[-1] == (D(2024, 5, 1), "contraction", 900.0, 800.0, None)


def test_reactivation_after_churn_with_a_gap() -> None:
    t = subs(
        ("a", "core", "pro", 10, 1000.0, "2024-01-01", "2024-03-01"),
        ("a", "core", "basic", 4, 300.0, "2024-07-01", None),
    )
    got = records(run(movements(t)), COLS)
    assert got == [
        (D(2024, 1, 1), "new", 0.0, 1000.0, None),
        (D(2024, 3, 1), "churn", 1000.0, 0.0, None),
        (D(2024, 7, 1), "reactivation", 0.0, 300.0, None),
    ]


def test_mixed_when_seats_and_cross_sell_on_one_day() -> None:
    t = subs(
        ("a", "core", "pro", 10, 1000.0, "2024-01-01", "2024-02-01"),
        ("a", "core", "pro", 12, 1200.0, "2024-02-01", None),
        ("a", "addon", "basic", 5, 100.0, "2024-02-01", None),
    )
    got = records(run(movements(t)), COLS)
    assert got[-1] == (D(2024, 2, 1), "expansion", 1000.0, 1300.0, "mixed")


def test_plan_upgrade_follows_tier_rank_when_the_catalog_is_present() -> None:
    # "enterprise" sorts before "pro" and the MRR goes up for more seats: only the catalog says it is a downgrade.
    t = subs(
        ("a", "core", "pro", 10, 1000.0, "2024-01-01", "2024-02-01"),
        ("a", "core", "enterprise", 10, 1500.0, "2024-02-01", "2024-03-01"),
        ("a", "core", "starter", 40, 1600.0, "2024-03-01", None),
    )
    catalog = ibis.memtable(pd.DataFrame({
        "product_id": ["core"] * 3, "plan": ["starter", "pro", "enterprise"], "tier_rank": [1, 2, 3],
    }))
    got = records(run(movements(t, catalog)), COLS)
    assert [g[4] for g in got[1:]] == ["plan_upgrade", "seats"]
    without_catalog = records(run(movements(t)), COLS)
    assert [g[4] for g in without_catalog[1:]] == ["plan_upgrade", "mixed"]


def test_a_new_period_with_the_same_mrr_is_no_movement() -> None:
    t = subs(
        ("a", "core", "pro", 10, 1000.0, "2024-01-01", "2024-06-01"),
        ("a", "core", "pro", 10, 1000.0, "2024-06-01", None),
        ("b", "core", "pro", 3, 0.1, "2024-01-01", "2024-02-01"),
        ("b", "core", "pro", 3, 0.2, "2024-02-01", "2024-03-01"),
        ("b", "core", "pro", 3, 0.3, "2024-03-01", "2024-04-01"),
        ("b", "core", "pro", 3, 0.7, "2024-04-01", None),
    )
    got = run(movements(t))
    assert list(got.loc[got.account_id == "a", "movement"]) == ["new"]
    assert list(got.loc[got.account_id == "b", "movement"]) == ["new", "expansion", "expansion", "expansion"]


def test_account_mrr_at_counts_valid_from_in_and_valid_to_out() -> None:
    t = subs(
        ("a", "core", "pro", 10, 1000.0, "2024-01-01", "2024-04-01"),
        ("a", "core", "pro", 15, 1500.0, "2024-04-01", None),
        ("a", "addon", "free", 2, 0.0, "2024-01-01", None),
        ("b", "core", "pro", 1, 50.0, "2024-02-01", "2024-03-01"),
    )
    got = account_mrr_at(t, [D(2024, 1, 1), D(2024, 3, 31), D(2024, 4, 1), D(2024, 3, 1)]).execute()
    got = got.sort_values(["account_id", "as_of"]).reset_index(drop=True)
    got["as_of"] = got["as_of"].dt.date
    assert records(got, ["account_id", "as_of", "mrr", "seats", "products_owned"]) == [
        ("a", D(2024, 1, 1), 1000.0, 12, 1),
        ("a", D(2024, 3, 1), 1000.0, 12, 1),
        ("a", D(2024, 3, 31), 1000.0, 12, 1),
        ("a", D(2024, 4, 1), 1500.0, 17, 1),
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_movements_add_up_to_account_mrr_on_random_histories(seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for a in range(40):
        for p in ("core", "addon", "api"):
            day = D(2023, 1, 1) + dt.timedelta(days=int(rng.integers(0, 200)))
            for _ in range(int(rng.integers(0, 5))):
                length = int(rng.integers(20, 200))
                end = day + dt.timedelta(days=length)
                rows.append((f"a{a}", p, str(rng.choice(["s", "m", "l"])), int(rng.integers(1, 30)),
                             float(rng.integers(0, 40) * 12.5 + 0.1), day.isoformat(), end.isoformat()))
                day = end + dt.timedelta(days=int(rng.choice([0, 0, 0, 30])))
            if rows and rng.random() < 0.5 and rows[-1][0] == f"a{a}" and rows[-1][1] == p:
                rows[-1] = rows[-1][:6] + (None,)
    t = subs(*rows)
    m = run(movements(t))
    check_days = [D(2023, 3, 1), D(2023, 9, 15), D(2024, 6, 30), D(2025, 12, 31)]
    mrr = account_mrr_at(t, check_days).execute()
    mrr["as_of"] = mrr["as_of"].dt.date
    for day in check_days:
        summed = m[m["date"] <= day].groupby("account_id")["mrr_delta"].sum()
        direct = mrr[mrr["as_of"] == day].set_index("account_id")["mrr"]
        both = pd.concat([summed.rename("summed"), direct.rename("direct")], axis=1).fillna(0.0)
        assert np.allclose(both["summed"], both["direct"], atol=1e-6), day
    assert (m["mrr_delta"] != 0).all()
    assert set(m["movement"]) <= {"new", "expansion", "contraction", "churn", "reactivation"}
    assert m.loc[m["movement"] == "expansion", "expansion_kind"].notna().all()
    assert m.loc[m["movement"] != "expansion", "expansion_kind"].isna().all()
    first = m.groupby("account_id").head(1)
    assert (first["movement"] == "new").all()
