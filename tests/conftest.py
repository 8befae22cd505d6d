"""Shared fixtures: a small generated company, its feature frame, and hand-built tiny tables.

``generated_company`` and ``feature_frame`` are session-scoped so every package's tests
reuse one generated folder and one feature build.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features.config import Settings

COMPANY_AS_OF = dt.date(2026, 6, 30)
TINY_AS_OF = dt.date(2025, 3, 31)
MESSY_AS_OF = dt.date(2026, 12, 1)
TINY_USAGE_START, TINY_USAGE_END = dt.date(2024, 10, 1), dt.date(2025, 7, 31)
SHARED_SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "samples"  # EXPANSION_SHARED_SAMPLES overrides


@pytest.fixture(scope="session")
def shared_samples() -> Path:
    """Third-party sample exports beside the project (``../shared/samples``), not part of the repository: a test
    reading them skips, saying so, when they are absent; in CI (``CI=true``) their absence fails the test."""
    import os

    folder = Path(os.environ.get("EXPANSION_SHARED_SAMPLES", SHARED_SAMPLES))
    if not folder.is_dir():
        message = f"the third-party sample exports are not here ({folder.resolve()}); they are not part of the repository"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}, and CI=true requires them")
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session", autouse=True)
def feature_plans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compiled feature SQL (``features.plans``) in a folder of this test session rather than under the default home
    in the checkout; tests of where plans live give ``feature_plans=None``. Subprocesses inherit it."""
    import os

    return Path(os.environ.setdefault("EXPANSION_FEATURE_PLANS", str(tmp_path_factory.mktemp("feature_plans"))))


@pytest.fixture(scope="session")
def generated_company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated company: 600 accounts over 18 months ending 2026-06-30 (seed 11)."""
    from features.synth import generate

    out = tmp_path_factory.mktemp("company")
    generate(out, accounts=600, months=18, seed=11, as_of=COMPANY_AS_OF)
    return out


@pytest.fixture(scope="session")
def messy_company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A messy generated company (``MessyConfig``): 150 accounts over 14 months ending 2026-12-01 (seed 7)."""
    from features.synth import MessyConfig, generate

    out = tmp_path_factory.mktemp("messy_company")
    generate(out, accounts=150, months=14, seed=7, as_of=MESSY_AS_OF, mess=MessyConfig())
    return out


@pytest.fixture(scope="session")
def feature_frame(generated_company: Path) -> pd.DataFrame:
    """The feature frame of ``generated_company`` over its month-end snapshots."""
    from features.build import build_features
    from features.io import open_data
    from features.spine import month_ends

    source = open_data(generated_company)
    try:
        first = source.con.execute("SELECT min(date) FROM usage_daily").fetchone()[0]
        return build_features(source, month_ends(first, COMPANY_AS_OF), Settings(_env_file=None))
    finally:
        source.close()


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [d.date() for d in pd.date_range(start, end, freq="D")]


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Four hand-built accounts with known futures after 2025-03-31 (see each comment)."""
    d = dt.date
    accounts = pd.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4"],
        "name": ["Alpha", "Beta", "Gamma", "Delta"],
        "segment": ["smb", "smb", "mid_market", "smb"],
        "industry": ["software"] * 4,
        "region": ["emea", "emea", "na", "na"],
        "employees": [100, 50, 400, 40],
        "acquisition_channel": ["direct", "partner", "direct", "self_serve"],
        "customer_since": [d(2024, 1, 1)] * 4,
        "csm_owner": ["kim", None, "kim", "lee"],
        "fiscal_year_start_month": pd.array([7, 1, None, 4], dtype="Int64"),
    })
    sub_rows = [
        # A1 adds 5 seats on 2025-05-10, 40 days after TINY_AS_OF.
        ("A1", "core", "basic", 10, 100.0, 1000.0, d(2024, 1, 1), d(2025, 5, 10), d(2026, 1, 1)),
        ("A1", "core", "basic", 15, 150.0, 1000.0, d(2025, 5, 10), None, d(2026, 1, 1)),
        # A2 churns on 2025-04-20.
        ("A2", "core", "pro", 5, 100.0, 5000.0, d(2024, 1, 1), d(2025, 4, 20), d(2025, 4, 20)),
        # A3 drops its add-on on 2025-04-15 (a contraction).
        ("A3", "core", "basic", 10, 100.0, 1000.0, d(2024, 1, 1), None, d(2026, 1, 1)),
        ("A3", "addon", "basic", 10, 50.0, None, d(2024, 6, 1), d(2025, 4, 15), None),
        # A4 stays flat.
        ("A4", "core", "basic", 10, 100.0, 1000.0, d(2024, 1, 1), None, d(2025, 6, 30)),
    ]
    subs = pd.DataFrame(sub_rows, columns=["account_id", "product_id", "plan", "seats", "mrr", "usage_limit",
                                           "valid_from", "valid_to", "renewal_date"])
    products = pd.DataFrame({
        "product_id": ["core", "core", "addon"], "plan": ["basic", "pro", "basic"], "tier_rank": [1, 2, 1],
        "list_price_per_seat": [10.0, 20.0, 5.0], "usage_limit": [1000.0, 5000.0, None],
    })
    plan_features = pd.DataFrame({
        "product_id": ["core"] * 6 + ["addon"],
        "plan": ["basic", "basic", "pro", "pro", "pro", "pro", "basic"],
        "feature_key": ["dash", "report", "dash", "report", "api_calls", "automation", "addon_sync"],
    })
    usage_rows = []
    for day in _days(TINY_USAGE_START, TINY_USAGE_END):
        usage_rows.append(("A1", day, "dash", 20, 8))
        usage_rows.append(("A1", day, "api_calls", 5, 2))  # gated: only 'pro' unlocks it
        if day <= d(2025, 4, 19):
            usage_rows.append(("A2", day, "dash", 3, 1))
        usage_rows.append(("A3", day, "dash", 10, 4))
        usage_rows.append(("A4", day, "dash", 10, 5))
        usage_rows.append(("A4", day, "report", 2, 3))
    usage = pd.DataFrame(usage_rows, columns=["account_id", "date", "feature_key", "events", "active_users"])
    ts = pd.Timestamp
    tickets = pd.DataFrame({
        "ticket_id": ["T1", "T2", "T3", "T4"],
        "account_id": ["A1", "A1", "A2", "A2"],
        "created_at": [ts("2025-03-20 09:00"), ts("2025-01-15 10:00"), ts("2025-03-31 23:30"), ts("2025-03-25 08:00")],
        "priority": ["urgent", "normal", "high", "low"],
        "category": ["bug", "feature_request", "outage", "how_to"],
        "resolved_at": [ts("2025-03-21 09:00"), ts("2025-01-15 14:00"), None, ts("2025-04-02 08:00")],
        "csat": [4.0, 2.0, None, 5.0],
    })
    surveys = pd.DataFrame({
        "account_id": ["A1", "A1", "A2", "A3"],
        "responded_at": [ts("2024-12-01 12:00"), ts("2025-03-01 12:00"), ts("2025-02-10 12:00"), ts("2025-03-05")],
        "kind": ["nps", "nps", "nps", "csat"],
        "score": [6.0, 9.0, 3.0, 4.0],
        "respondent_role": ["admin", "executive", "user", "admin"],
    })
    activities = pd.DataFrame({
        "account_id": ["A1", "A1", "A1", "A3"],
        "occurred_at": [ts("2025-03-11 15:00"), ts("2024-11-20 10:00"), ts("2025-03-29 10:00"), ts("2024-01-15")],
        "kind": ["qbr", "meeting", "email", "call"],
        "with_executive": [True, True, False, False],
    })
    payments = pd.DataFrame({
        "invoice_id": ["I1", "I2", "I3", "I4"],
        "account_id": ["A2", "A2", "A2", "A4"],
        "due_date": [d(2025, 2, 1), d(2025, 3, 1), d(2024, 11, 1), d(2025, 3, 1)],
        "amount": [100.0, 100.0, 100.0, 100.0],
        "paid_at": [None, ts("2025-03-20"), None, ts("2025-02-27")],
        "status": ["failed", "late", "failed", "paid"],
    })
    return {"accounts": accounts, "subscriptions": subs, "products": products, "plan_features": plan_features,
            "usage_daily": usage, "support_tickets": tickets, "surveys": surveys, "activities": activities,
            "payments": payments}


def write_tables(folder: Path, tables: dict[str, pd.DataFrame]) -> Path:
    """Write each frame as ``<table>.parquet`` in ``folder`` (dates as DATE, timestamps as TIMESTAMP)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture
def tiny_company(tmp_path: Path) -> Callable[..., Path]:
    """A factory writing the tiny hand-built tables (optionally edited) to a fresh folder."""
    counter = iter(range(1000))

    def make(edit: Callable[[dict[str, pd.DataFrame]], None] | None = None) -> Path:
        tables = tiny_tables()
        if edit is not None:
            edit(tables)
        return write_tables(tmp_path / f"tiny{next(counter)}", tables)

    return make
