"""Salesforce (Fivetran schema, snake_case fields, custom fields ending ``_c``) into ``accounts``,
``opportunities`` and ``opportunity_stages``.

* Accounts from ``account`` (or ``account_history`` in Fivetran history mode: the active
  version); segment from a mapped field (default ``segment_c``) or from the employee count;
  region from a mapped field (default ``region_c``, else ``billing_country``); channel from
  ``account_source``; ``csm_owner`` = the owner's name from ``user`` (or a mapped field);
  ``customer_since`` from a mapped field (default ``customer_since_c``, else ``created_date``;
  the importer falls back to the first subscription).
* Opportunities from ``opportunity`` (amounts in currency units); the stage history from
  ``opportunity_history`` (history mode: a stage is entered when a version first shows it),
  else each opportunity's current stage at its creation.
"""

from __future__ import annotations

import pandas as pd

from features.importers.crm import channel_of, kind_of, segment_of, unique_rows
from features.importers.errors import Problems
from features.importers.parse import (
    CURRENCY_EXPONENT,
    booleans,
    counted_numbers,
    numbers,
    require_columns,
    text,
    timestamps,
)
from features.importers.reader import RawSource
from features.importers.shapes import SourceTables

SOURCE = "salesforce"


def _current(frame: pd.DataFrame, keep_deleted: bool = False) -> pd.DataFrame:
    """The current version of each row in history mode; deleted rows dropped (kept with ``keep_deleted``)."""
    if "_fivetran_active" in frame:
        frame = frame[booleans(frame["_fivetran_active"]).fillna(True)]
    if "is_deleted" in frame and not keep_deleted:
        frame = frame[~booleans(frame["is_deleted"]).fillna(False)]
    return frame


def _users(raw: RawSource) -> pd.Series:
    if not raw.has("user"):
        return pd.Series(dtype="string")
    u = _current(raw.read("user"))
    if "id" not in u or "name" not in u:
        return pd.Series(dtype="string")
    name = text(u["name"])
    if "first_name" in u and "last_name" in u:
        name = name.fillna((text(u["first_name"]).fillna("") + " " + text(u["last_name"]).fillna("")).str.strip())
    return pd.Series(name.to_numpy(), index=text(u["id"]).to_numpy(), dtype="string")


def _field(frame: pd.DataFrame, name: str | None, *fallbacks: str) -> pd.Series:
    for candidate in (name, *fallbacks):
        if candidate and candidate in frame:
            return frame[candidate]
    return pd.Series(pd.NA, index=frame.index, dtype="string")


def accounts(raw: RawSource, problems: Problems, settings: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``accounts`` keyed by the Salesforce account id, the raw account rows for the identity map)."""
    name = "account" if raw.has("account") else "account_history"
    a = raw.required(name, problems, ("id", "name"), shown="account")
    if a is None:
        return pd.DataFrame(), pd.DataFrame()
    first_seen = None
    if "_fivetran_start" in a:
        first_seen = timestamps(a["_fivetran_start"]).groupby(text(a["id"])).min()
    problems.ledger.read(name, len(a))
    a = _current(a, settings.get("keep_deleted", False))
    a = unique_rows(problems, name, a)
    ids = text(a["id"])
    employees_col = settings.get("employees") if settings.get("employees") in a else "number_of_employees"
    employees = (counted_numbers(problems, name, employees_col, a[employees_col], ids) if employees_col in a
                 else pd.Series(pd.NA, index=a.index, dtype="Float64"))
    problems.check(name, employees_col, "negative", employees < 0, ids)
    if employees_col not in a and settings.get("segment", "segment_c") not in a:
        problems.ledger.say(f"{name}: no {employees_col} and no segment field: every account smb, employees 0")
    users = _users(raw)
    owner_name = text(_field(a, settings.get("owner"), "owner_id")).map(users).astype("string")
    csm = text(a[settings["csm"]]) if settings.get("csm") in a else owner_name
    since = timestamps(_field(a, settings.get("customer_since"), "customer_since_c", "created_date"))
    if first_seen is not None:
        since = since.fillna(text(a["id"]).map(first_seen))
    out = pd.DataFrame({
        "account_id": text(a["id"]),
        "name": text(a["name"]).fillna(text(a["id"])),
        "segment": segment_of(problems, name, a, settings, employees),
        "industry": text(_field(a, settings.get("industry"), "industry")).fillna("unknown"),
        "region": text(_field(a, settings.get("region"), "region_c", "billing_country")).fillna("unknown"),
        "employees": employees.fillna(0).round().astype("Int64"),
        "acquisition_channel": channel_of(_field(a, settings.get("channel"), "account_source")),
        "customer_since": since.dt.floor("D"),
        "csm_owner": csm,
        "fiscal_year_start_month": numbers(_field(a, settings.get("fiscal_year_start_month"), "fiscal_year_start_month_c")).round().astype("Int64"),
    })
    problems.ledger.kept(name, len(out))
    return out.reset_index(drop=True), a.reset_index(drop=True)


def opportunities(raw: RawSource, problems: Problems, settings: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``opportunities``, ``opportunity_stages``), keyed by the Salesforce account id."""
    if not raw.has("opportunity"):
        return pd.DataFrame(), pd.DataFrame()
    o = _current(raw.read("opportunity"), settings.get("keep_deleted", False))
    if not require_columns(problems, "opportunity", o, ("id", "account_id", "created_date", "stage_name", "is_closed", "is_won")):
        return pd.DataFrame(), pd.DataFrame()
    problems.ledger.read("opportunity", len(o))
    o = unique_rows(problems, "opportunity", o)
    if "currency_iso_code" in o:
        codes = text(o["currency_iso_code"]).str.lower()
        problems.check("opportunity", "currency_iso_code", "unknown currency", codes.notna() & ~codes.isin(list(CURRENCY_EXPONENT)))
        if codes.nunique() > 1:
            problems.add("opportunity", "currency_iso_code", f"several currencies ({', '.join(sorted(codes.dropna().unique()))}); "
                         "money must be in one currency per dataset")
    amount = (counted_numbers(problems, "opportunity", "amount", o["amount"], text(o["id"])) if "amount" in o
              else pd.Series(0.0, index=o.index))
    problems.ledger.coerce("opportunity", "amount", "empty amount read as 0", text(o["id"])[amount.isna()])
    problems.check("opportunity", "amount", "negative", amount < 0)
    closed, won = booleans(o["is_closed"]).fillna(False), booleans(o["is_won"]).fillna(False)
    created = timestamps(o["created_date"])
    close_date = timestamps(o["close_date"]) if "close_date" in o else pd.Series(pd.NaT, index=o.index)
    closed_at = close_date.where(closed)
    closed_at = closed_at.where(closed_at.isna() | (closed_at >= created), created)  # closed before it was opened: same instant
    users = _users(raw)
    opps = pd.DataFrame({
        "opportunity_id": text(o["id"]), "account_id": text(o["account_id"]),
        "kind": kind_of(_field(o, settings.get("opportunity_kind"), "type")),
        "amount": amount.fillna(0).astype(float),
        "created_at": created, "expected_close_date": close_date.dt.floor("D"),
        "closed_at": closed_at,
        "outcome": pd.Series("open", index=o.index).where(~closed, "lost").where(~(closed & won), "won"),
        "owner": text(_field(o, None, "owner_id")).map(users).astype("string"),
    }).reset_index(drop=True)
    problems.check("opportunity", "created_date", "missing", opps["created_at"].isna())
    return opps, _stages(raw, o, created)


def _stages(raw: RawSource, current: pd.DataFrame, created: pd.Series) -> pd.DataFrame:
    if raw.has("opportunity_history"):
        h = raw.read("opportunity_history")
        if {"opportunity_id", "stage_name", "created_date"} <= set(h.columns):  # Salesforce's OpportunityHistory object
            h = h.assign(id=h["opportunity_id"], _fivetran_start=h["created_date"])
        if {"id", "stage_name", "_fivetran_start"} <= set(h.columns):
            h = pd.DataFrame({"opportunity_id": text(h["id"]), "stage": text(h["stage_name"]),
                              "entered_at": timestamps(h["_fivetran_start"])}).sort_values(["opportunity_id", "entered_at"])
            changed = h["stage"].ne(h.groupby("opportunity_id")["stage"].shift()).fillna(True).astype(bool)
            return h[changed & h["stage"].notna()].drop_duplicates().reset_index(drop=True)
    out = pd.DataFrame({"opportunity_id": text(current["id"]), "stage": text(current["stage_name"]), "entered_at": created})
    return out[out["stage"].notna()].reset_index(drop=True)


def read(raw: RawSource, settings: dict) -> SourceTables:
    """Every table Salesforce gives, keyed by the Salesforce account id."""
    problems = Problems(SOURCE)
    problems.ledger = raw.ledger or problems.ledger
    accts, keys = accounts(raw, problems, settings)
    opps, stages = opportunities(raw, problems, settings)
    problems.raise_if_any()
    return SourceTables(SOURCE, {"accounts": accts, "opportunities": opps, "opportunity_stages": stages}, keys, "account",
                        ledger=problems.ledger)
