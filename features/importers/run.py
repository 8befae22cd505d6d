"""``import_sources``: read every named source, join them through the identity map, write the contract all or nothing.

The contract folder is written beside the target (``.<name>.import-*`` in the same parent),
checked with :func:`features.validate.validate`, and only then renamed into place, so a
failed import leaves what was there before untouched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.contract import REQUIRED_TABLES
from features.importers import events, hubspot, salesforce, stripe
from features.importers.errors import ImportFailed, ImportProblem
from features.importers.identity import (
    DEFAULT_MATCH,
    IdentityMap,
    crm_accounts,
    match_source,
    report,
    unmatched_problem,
)
from features.importers.money import Currency
from features.importers.reader import open_raw
from features.importers.reconcile import reconciliation
from features.importers.shapes import CRM_SOURCES, SOURCES, SourceTables
from features.importers.write import MARKER, check_target, clean_stale, write_contract  # noqa: F401 - the package's API



_READERS = {"stripe": stripe.read, "salesforce": salesforce.read, "hubspot": hubspot.read, "segment": events.read,
            "rudderstack": events.read, "amplitude": events.read, "mixpanel": events.read}


@dataclass
class ImportResult:
    """What an import wrote: rows per table, the identity report, notes on what was dropped or defaulted."""

    out: Path
    rows: dict[str, int]
    report: dict
    notes: list[str] = field(default_factory=list)


def read_sources(sources: list[str], location: str | Path, config: dict, money: Currency | None = None,
                 layout: str | None = None) -> dict[str, SourceTables]:
    """Read every source (in ``layout``, else the layout detected per source); raise ImportFailed listing the
    problems of all of them."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ImportFailed([ImportProblem(s, "*", "*", f"unknown source (known: {', '.join(SOURCES)})") for s in unknown])
    read: dict[str, SourceTables] = {}
    problems: list[ImportProblem] = []
    for source in sources:
        settings = config.get(source, {})
        try:
            raw = open_raw(source, settings.get("from", location), settings.get("schema"), settings,
                           settings.get("layout", layout))
            got = _READERS[source](raw, settings, money) if source == "stripe" else _READERS[source](raw, settings)
            got.layout = raw.layout
            read[source] = got
        except ImportFailed as exc:
            problems.extend(exc.problems)
    if problems:
        raise ImportFailed(problems)
    return read


def assemble(read: dict[str, SourceTables], config: dict, as_of: dt.date | None = None) -> tuple[dict[str, pd.DataFrame], dict, list[str]]:
    """The contract tables from what each source gave, account ids mapped to the CRM's."""
    crms = [s for s in read if s in CRM_SOURCES]
    if len(crms) != 1:
        gives = {s: ", ".join(SOURCES[s]) for s in read}
        raise ImportFailed([ImportProblem("import", "accounts", "*",
                                          "exactly one CRM source (salesforce or hubspot) must be imported, it gives the accounts; "
                                          f"got {', '.join(crms) or 'none'} ({'; '.join(f'{k}: {v}' for k, v in gives.items())})")])
    crm = read[crms[0]]
    account_ids = crm_accounts(crm, config)
    identity = IdentityMap(crm.source, account_ids)
    drop = config.get("identity", {}).get("unmatched", "error") == "drop"
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    problems: list[ImportProblem] = []
    for got in read.values():
        notes.extend(got.notes)
    _orphans(crm)
    for name, frame in crm.tables.items():
        if not frame.empty or name == "accounts":
            tables[name] = _remap(frame, account_ids.to_dict()) if "account_id" in frame else frame
    for source, got in read.items():
        if source == crm.source:
            continue
        used = set()
        for frame in got.tables.values():
            if "account_id" in frame:
                used |= set(frame["account_id"].dropna().astype(str))
        m = match_source(got, crm, account_ids, config, used)
        identity.matches[source] = m
        if m.unmatched:
            spec = config.get(source, {}).get("match", DEFAULT_MATCH.get(source, "id"))
            if drop:
                notes.append(f"{source}: {len(m.unmatched)} account(s) with no {crm.source} match left out")
            else:
                problems.append(unmatched_problem(m, got.key_table, spec, crm.source))
        for name, frame in got.tables.items():
            if frame.empty and name not in REQUIRED_TABLES:
                continue
            out = _remap(frame, m.native_to_account) if "account_id" in frame else frame
            tables[name] = pd.concat([tables[name], out], ignore_index=True) if name in tables else out
    if problems:
        raise ImportFailed(problems)
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise ImportFailed([ImportProblem("import", t, "*", "no imported source gives this required table "
                                          f"(it comes from {', '.join(s for s, g in SOURCES.items() if t in g)})") for t in missing])
    _fill_customer_since(tables, notes)
    if as_of is not None:
        _clip_future(tables, as_of, notes)
    for got in read.values():
        if got.ledger is not None:
            notes.extend(got.ledger.notes())
    report = _report(identity, tables, crm)
    report["reconciliation"] = reconciliation(read, tables)
    return tables, report, notes


def _clip_future(tables: dict[str, pd.DataFrame], as_of: dt.date, notes: list[str]) -> None:
    """Periods that begin after ``as_of`` (a pause that ends later, a scheduled change) are not known yet: left out,
    and the period before them stays open."""
    subs = tables["subscriptions"]
    if subs.empty:
        return
    cut = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    future = pd.to_datetime(subs["valid_from"]) >= cut
    if not future.any():
        return
    starts = set(zip(subs.loc[future, "account_id"], subs.loc[future, "product_id"], pd.to_datetime(subs.loc[future, "valid_from"])))
    key = zip(subs["account_id"], subs["product_id"], pd.to_datetime(subs["valid_to"]))
    reopened = pd.Series([k in starts for k in key], index=subs.index) & ~future
    subs = subs.copy()
    subs.loc[reopened, "valid_to"] = pd.NaT
    tables["subscriptions"] = subs[~future].reset_index(drop=True)
    notes.append(f"subscriptions: {int(future.sum())} period(s) beginning after {as_of} left out (not known yet); "
                 f"{int(reopened.sum())} period(s) before them left open")


def _orphans(crm: SourceTables) -> None:
    """Deals whose account the CRM does not have are left out, counted with their ids, and so are their stage rows."""
    opps = crm.tables.get("opportunities")
    if opps is None or opps.empty:
        return
    known = set(crm.tables["accounts"]["account_id"].dropna())
    orphan = ~opps["account_id"].isin(known)
    if not orphan.any():
        return
    table = "opportunity" if crm.source == "salesforce" else "deal"
    if crm.ledger is not None:
        crm.ledger.drop(table, "its account is not among the CRM's accounts (missing or deleted)", opps.loc[orphan, "opportunity_id"])
    crm.tables["opportunities"] = opps[~orphan].reset_index(drop=True)
    stages = crm.tables.get("opportunity_stages")
    if stages is not None and not stages.empty:
        gone = stages["opportunity_id"].isin(set(opps.loc[orphan, "opportunity_id"]))
        if crm.ledger is not None:
            crm.ledger.drop(f"{table} stages", "stage rows of a deal left out for having no account", stages.loc[gone, "opportunity_id"])
        crm.tables["opportunity_stages"] = stages[~gone].reset_index(drop=True)


def _remap(frame: pd.DataFrame, mapping: dict) -> pd.DataFrame:
    """Native ids to the contract's: exact first, then with surrounding spaces ignored (readers trim some ids)."""
    ids = frame["account_id"].map(mapping)
    if ids.isna().any():
        trimmed = {str(k).strip(): v for k, v in mapping.items()}
        ids = ids.fillna(frame["account_id"].astype("string").str.strip().map(trimmed))
    return frame[ids.notna()].assign(account_id=ids[ids.notna()].astype("string"))


def _fill_customer_since(tables: dict[str, pd.DataFrame], notes: list[str]) -> None:
    accounts = tables["accounts"]
    first = tables["subscriptions"].groupby("account_id")["valid_from"].min()
    gap = accounts["customer_since"].isna()
    if gap.any():
        filled = accounts.loc[gap, "account_id"].map(first)
        accounts.loc[gap, "customer_since"] = filled
        notes.append(f"accounts.customer_since: {int(filled.notna().sum())} taken from the first subscription")
        still = accounts["customer_since"].isna()
        if still.any():
            raise ImportFailed([ImportProblem("import", "accounts", "customer_since",
                                              "no start date in the CRM and no subscription", int(still.sum()))])


def _report(identity: IdentityMap, tables: dict[str, pd.DataFrame], crm: SourceTables) -> dict:
    subs = tables["subscriptions"]
    current = subs[subs["valid_to"].isna()]
    billing_arr = (current.groupby("account_id")["mrr"].sum() * 12).round(2)
    opps = tables.get("opportunities")
    crm_amount = pd.Series(dtype=float)
    if opps is not None and not opps.empty:
        crm_amount = opps[opps["outcome"] == "won"].groupby("account_id")["amount"].sum()
    return report(identity, len(tables["accounts"]), billing_arr, crm_amount)


def imported_data_end(tables: dict[str, pd.DataFrame]) -> dt.date:
    """The newest usage day of the imported tables: what every later command treats as the data end."""
    usage = tables.get("usage_daily")
    if usage is None or usage.empty:
        raise ImportFailed([ImportProblem("import", "usage_daily", "date", "no usage rows to date the import by: pass --as-of")])
    return pd.Timestamp(pd.to_datetime(usage["date"]).max()).date()


def import_sources(sources: list[str], location: str | Path, out: str | Path, config: dict, as_of: dt.date | None,
                   money: Currency | None = None, layout: str | None = None) -> ImportResult:
    """Import ``sources`` from ``location`` into the contract folder ``out``; raise ImportFailed (nothing written) on any problem.

    ``as_of``: nothing imported may lie after it (default: the data end, the newest imported usage day, never the
    clock); ``money``: the reporting currency and its rates (default: one currency required); ``layout``: the
    connector layout of every source (default: detected per source)."""
    check_target(Path(out))
    read = read_sources(sources, location, config, money, layout)
    tables, identity_report, notes = assemble(read, config, as_of)
    if as_of is None:
        as_of = imported_data_end(tables)
        notes.insert(0, f"as of {as_of}: the data end, the newest imported usage_daily day (--as-of to bound it)")
    rows = write_contract(tables, Path(out), as_of)
    return ImportResult(Path(out), rows, identity_report, notes)
