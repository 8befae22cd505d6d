"""Raw-table reads of the pages: every account's usage read at once equals the one-account query it replaced;
names come from the contract's accounts table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from serving.web.company import CompanyData

AS_OF = dt.date(2026, 6, 30)
ONE_ACCOUNT = """
    WITH m AS (SELECT date_trunc('month', CAST(date AS DATE)) AS month, SUM(events) AS events
               FROM usage_daily WHERE account_id = ? AND CAST(date AS DATE) BETWEEN ? AND ? GROUP BY 1)
    SELECT m.month, m.events,
      (SELECT SUM(s.usage_limit) FROM subscriptions s WHERE s.account_id = ?
         AND CAST(s.valid_from AS DATE) <= last_day(m.month)
         AND (s.valid_to IS NULL OR CAST(s.valid_to AS DATE) > last_day(m.month))) AS usage_limit
    FROM m ORDER BY m.month"""


def test_usage_of_every_account_equals_the_one_account_query(generated_company: Path) -> None:
    company = CompanyData(generated_company)
    accounts = pd.read_parquet(generated_company / "accounts.parquet")["account_id"].astype(str)
    for account in accounts.sample(25, random_state=3):
        expected = company.query(ONE_ACCOUNT, [account, dt.date(2025, 7, 1), AS_OF, account])
        got = company.usage(account, AS_OF)
        assert got["events"].tolist() == expected["events"].tolist()
        assert got["usage_limit"].fillna(-1).tolist() == expected["usage_limit"].fillna(-1).tolist()
        assert pd.to_datetime(got["month"]).tolist() == pd.to_datetime(expected["month"]).tolist()
    assert company.usage("no-such-account", AS_OF).empty


def test_names_come_from_the_accounts_table(generated_company: Path) -> None:
    accounts = pd.read_parquet(generated_company / "accounts.parquet")
    names = CompanyData(generated_company).names()
    assert names == dict(zip(accounts["account_id"].astype(str), accounts["name"].astype(str), strict=True))
    assert CompanyData(None).available is False
