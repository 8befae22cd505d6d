"""HubSpot (Fivetran schema: object properties as ``property_*`` columns) into ``accounts``,
``opportunities``, ``opportunity_stages`` and ``activities``.

* Accounts from ``company``: name, industry, country as region (or a mapped property),
  employees (``property_numberofemployees``), segment from a mapped property or the employee
  count, channel from ``property_hs_analytics_source``, ``csm_owner`` = the owner's name
  (``owner``: first and last name, else e-mail) of ``property_hubspot_owner_id``,
  ``customer_since`` from a mapped property (default ``property_createdate``).
* Deals from ``deal`` with their company from ``deal_company``; stage label, order and
  won/closed from ``deal_pipeline_stage`` (scoped by pipeline); the stage history from
  ``deal_stage`` (one row per stage entered). Deals with no company are left out (noted).
* Activities from meetings and calls in either column set: the older (``start_time``,
  ``timestamp``) and the newer (``property_hs_timestamp``, ``property_hs_meeting_start_time``),
  linked to companies through ``engagement_company``; ``with_executive`` from a mapped
  boolean property (default none: false).
"""

from __future__ import annotations

import pandas as pd

from features.importers.crm import channel_of, kind_of, segment_of, unique_rows
from features.importers.errors import Problems
from features.importers.parse import booleans, counted_numbers, numbers, require_columns, text, timestamps
from features.importers.reader import RawSource
from features.importers.shapes import SourceTables

SOURCE = "hubspot"
_TIME_COLUMNS = ("property_hs_timestamp", "property_hs_meeting_start_time", "start_time", "timestamp",
                 "property_hs_createdate", "created_at")
_ENGAGEMENTS = {"engagement_meeting": "meeting", "engagement_call": "call", "engagement_email": "email"}


def _live(frame: pd.DataFrame, keep_deleted: bool) -> pd.DataFrame:
    for flag in ("is_deleted", "_fivetran_deleted"):
        if flag in frame and not keep_deleted:
            frame = frame[~booleans(frame[flag]).fillna(False)]
    return frame


def _col(frame: pd.DataFrame, *names: str | None) -> pd.Series:
    for name in names:
        if name and name in frame:
            return frame[name]
    return pd.Series(pd.NA, index=frame.index, dtype="string")


def _owners(raw: RawSource) -> pd.Series:
    if not raw.has("owner"):
        return pd.Series(dtype="string")
    o = raw.read("owner")
    name = (text(_col(o, "first_name")).fillna("") + " " + text(_col(o, "last_name")).fillna("")).str.strip()
    name = name.mask(name == "").fillna(text(_col(o, "email")))
    return pd.Series(name.to_numpy(), index=text(_col(o, "owner_id", "id")).to_numpy(), dtype="string")


def accounts(raw: RawSource, problems: Problems, settings: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    c = raw.required("company", problems, ("id", "property_name"))
    if c is None:
        return pd.DataFrame(), pd.DataFrame()
    problems.ledger.read("company", len(c))
    c = unique_rows(problems, "company", _live(c, settings.get("keep_deleted", False)))
    employees = counted_numbers(problems, "company", "property_numberofemployees",
                                _col(c, settings.get("employees"), "property_numberofemployees"), text(c["id"]))
    problems.check("company", "property_numberofemployees", "negative", employees < 0, text(c["id"]))
    owner = text(_col(c, settings.get("owner"), "property_hubspot_owner_id")).map(_owners(raw)).astype("string")
    seg_settings = {**settings, "segment": settings.get("segment", "property_segment")}
    out = pd.DataFrame({
        "account_id": text(c["id"]),
        "name": text(c["property_name"]).fillna(text(c["id"])),
        "segment": segment_of(problems, "company", c, seg_settings, employees),
        "industry": text(_col(c, settings.get("industry"), "property_industry")).fillna("unknown"),
        "region": text(_col(c, settings.get("region"), "property_region", "property_country")).fillna("unknown"),
        "employees": employees.fillna(0).round().astype("Int64"),
        "acquisition_channel": channel_of(_col(c, settings.get("channel"), "property_hs_analytics_source")),
        "customer_since": timestamps(_col(c, settings.get("customer_since"), "property_createdate")).dt.floor("D"),
        "csm_owner": text(c[settings["csm"]]) if settings.get("csm") in c else owner,
        "fiscal_year_start_month": numbers(_col(c, settings.get("fiscal_year_start_month"))).round().astype("Int64"),
    })
    return out.reset_index(drop=True), c.reset_index(drop=True)


def _first_of_list(value: object) -> object:
    import json

    if isinstance(value, list):
        items = value
    else:
        try:
            items = json.loads(str(value))
        except ValueError:
            return pd.NA
    if isinstance(items, list) and items:
        first = items[0]
        return str(first.get("id")) if isinstance(first, dict) else str(first)
    return pd.NA


def _stage_catalog(raw: RawSource) -> pd.DataFrame:
    if not raw.has("deal_pipeline_stage"):
        return pd.DataFrame(columns=["stage_id", "label", "display_order", "closed_won", "is_closed"])
    s = _live(raw.read("deal_pipeline_stage"), False)
    return pd.DataFrame({
        "stage_id": text(s["stage_id"]), "label": text(_col(s, "label")).fillna(text(s["stage_id"])),
        "display_order": numbers(_col(s, "display_order")), "closed_won": booleans(_col(s, "closed_won")).fillna(False),
        "is_closed": booleans(_col(s, "is_closed")).fillna(False),
    }).drop_duplicates("stage_id", keep="last")


def opportunities(raw: RawSource, problems: Problems, settings: dict, notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not raw.has("deal"):
        return pd.DataFrame(), pd.DataFrame()
    d = _live(raw.read("deal"), settings.get("keep_deleted", False))
    if "deal_id" not in d and "id" in d:  # the API's (and Airbyte's) name for it
        d = d.assign(deal_id=d["id"])
    if "deal_pipeline_stage_id" not in d and "property_dealstage" in d:
        d = d.assign(deal_pipeline_stage_id=d["property_dealstage"])
    if not require_columns(problems, "deal", d, ("deal_id", "property_createdate")):
        return pd.DataFrame(), pd.DataFrame()
    d = unique_rows(problems, "deal", d.assign(id=d["deal_id"])) if d["deal_id"].duplicated().any() else d
    stages = _stage_catalog(raw)
    stage = text(_col(d, "deal_pipeline_stage_id")).to_frame("stage_id").merge(stages, on="stage_id", how="left")
    stage.index = d.index
    company = pd.Series(pd.NA, index=d.index, dtype="string")
    if raw.has("deal_company"):
        link = raw.read("deal_company")
        first = pd.Series(text(link["company_id"]).to_numpy(), index=text(link["deal_id"]).to_numpy())
        company = text(d["deal_id"]).map(first[~first.index.duplicated()]).astype("string")
    company = company.fillna(text(_col(d, "property_associated_company_id", "associated_company_id")))
    if "companies" in d:  # associations kept on the deal (the API's v3 objects): the first company
        company = company.fillna(d["companies"].map(_first_of_list).astype("string"))
    amount = counted_numbers(problems, "deal", "property_amount", _col(d, "property_amount"), text(d["deal_id"]))
    problems.ledger.coerce("deal", "property_amount", "empty amount read as 0", text(d["deal_id"])[amount.isna()])
    problems.check("deal", "property_amount", "negative", amount < 0)
    created = timestamps(d["property_createdate"])
    close = timestamps(_col(d, "property_closedate"))
    is_closed = booleans(stage["is_closed"]).fillna(booleans(_col(d, "property_hs_is_closed")))
    closed_won = booleans(stage["closed_won"]).fillna(booleans(_col(d, "property_hs_is_closed_won")))
    known = set(stages["stage_id"])
    is_closed = is_closed.where(stage["stage_id"].isin(known), booleans(_col(d, "property_hs_is_closed")))
    closed_won = closed_won.where(stage["stage_id"].isin(known), booleans(_col(d, "property_hs_is_closed_won")))
    closed, won = is_closed.fillna(False).astype(bool), closed_won.fillna(False).astype(bool)
    closed_at = close.where(closed)
    closed_at = closed_at.where(closed_at.isna() | (closed_at >= created), created)
    out = pd.DataFrame({
        "opportunity_id": text(d["deal_id"]), "account_id": company,
        "kind": kind_of(_col(d, settings.get("opportunity_kind"), "property_dealtype")),
        "amount": amount.fillna(0).astype(float), "created_at": created, "expected_close_date": close.dt.floor("D"),
        "closed_at": closed_at, "outcome": pd.Series("open", index=d.index).where(~closed, "lost").where(~(closed & won), "won"),
        "owner": text(_col(d, "owner_id", "property_hubspot_owner_id")).map(_owners(raw)).astype("string"),
    })
    orphan = out["account_id"].isna()
    if orphan.any():
        notes.append(f"hubspot.deal: {int(orphan.sum())} deal(s) with no company left out")
    out = out[~orphan].reset_index(drop=True)
    return out, _stage_history(raw, stages, set(out["opportunity_id"]))


def _stage_history(raw: RawSource, stages: pd.DataFrame, deals: set[str]) -> pd.DataFrame:
    if not raw.has("deal_stage"):
        return pd.DataFrame(columns=["opportunity_id", "stage", "entered_at"])
    h = raw.read("deal_stage")
    label = pd.Series(stages["label"].to_numpy(), index=stages["stage_id"].to_numpy())
    value = text(h["value"])
    out = pd.DataFrame({"opportunity_id": text(h["deal_id"]), "stage": value.map(label).astype("string").fillna(value),
                        "entered_at": timestamps(_col(h, "date_entered", "_fivetran_start"))})
    out = out[out["opportunity_id"].isin(deals) & out["stage"].notna() & out["entered_at"].notna()]
    return out.drop_duplicates().reset_index(drop=True)


def activities(raw: RawSource, problems: Problems, settings: dict, notes: list[str]) -> pd.DataFrame:
    frames = []
    for table, kind in _ENGAGEMENTS.items():
        if not raw.has(table):
            continue
        e = _live(raw.read(table), False)
        if not require_columns(problems, table, e, ("engagement_id",)):
            continue
        when = pd.Series(pd.NaT, index=e.index, dtype="datetime64[us]")
        for col in _TIME_COLUMNS:
            if col in e:
                when = when.fillna(timestamps(e[col]))
        problems.check(table, "property_hs_timestamp/start_time", "no time", when.isna())
        executive = booleans(_col(e, settings.get("executive"))).fillna(False) if settings.get("executive") else False
        frames.append(pd.DataFrame({"engagement_id": text(e["engagement_id"]), "occurred_at": when,
                                    "kind": kind, "with_executive": executive}))
    if not frames:
        return pd.DataFrame()
    acts = pd.concat(frames, ignore_index=True)
    link = raw.read("engagement_company") if raw.has("engagement_company") else pd.DataFrame(columns=["engagement_id", "company_id"])
    link = pd.DataFrame({"engagement_id": text(link["engagement_id"]), "account_id": text(link["company_id"])})
    acts = acts.merge(link, on="engagement_id", how="left")
    orphan = acts["account_id"].isna()
    if orphan.any():
        notes.append(f"hubspot: {int(orphan.sum())} meeting(s)/call(s) linked to no company left out")
    return acts[~orphan][["account_id", "occurred_at", "kind", "with_executive"]].reset_index(drop=True)


def read(raw: RawSource, settings: dict) -> SourceTables:
    """Every table HubSpot gives, keyed by the HubSpot company id."""
    problems, notes = Problems(SOURCE), []
    problems.ledger = raw.ledger or problems.ledger
    accts, keys = accounts(raw, problems, settings)
    opps, stages = opportunities(raw, problems, settings, notes)
    acts = activities(raw, problems, settings, notes)
    problems.raise_if_any()
    return SourceTables(SOURCE, {"accounts": accts, "opportunities": opps, "opportunity_stages": stages,
                                 "activities": acts}, keys, "company", notes, ledger=problems.ledger)
