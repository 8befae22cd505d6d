"""CRM values into the contract's enumerations: segment, acquisition channel and opportunity kind.

CRMs hold these as free-text picklists; each rule here is the documented default, and a
map file can name another field. Segment falls back to the employee count
(< 100 smb, < 1,000 mid_market, else enterprise; thresholds are settings).
"""

from __future__ import annotations

import pandas as pd

from features.contract import SEGMENTS
from features.importers.errors import Problems
from features.importers.parse import text, timestamps

SEGMENT_EMPLOYEES = (100, 1000)
_SEGMENT_WORDS = {"smb": "smb", "small": "smb", "small_business": "smb", "mid_market": "mid_market",
                  "midmarket": "mid_market", "mm": "mid_market", "mid": "mid_market", "commercial": "mid_market",
                  "enterprise": "enterprise", "ent": "enterprise", "large": "enterprise", "strategic": "enterprise"}


def _slug(values: pd.Series) -> pd.Series:
    return text(values).str.lower().str.replace(r"[\s\-/]+", "_", regex=True)


def segment_of(problems: Problems, table: str, frame: pd.DataFrame, settings: dict, employees: pd.Series) -> pd.Series:
    """Segment from the mapped field (default ``segment_c`` when it exists) or from the employee count."""
    field = settings.get("segment", "segment_c")
    small, large = settings.get("segment_employees", SEGMENT_EMPLOYEES)
    by_size = pd.Series("enterprise", index=frame.index, dtype="string")
    by_size = by_size.mask(employees < large, "mid_market").mask(employees < small, "smb")
    if field not in frame:
        return by_size.fillna("smb")
    mapped = _slug(frame[field]).map(lambda v: _SEGMENT_WORDS.get(v, v) if isinstance(v, str) else v).astype("string")
    unknown = mapped.notna() & ~mapped.isin(SEGMENTS)
    if unknown.any():
        problems.add(table, field, f"segment not one of {', '.join(SEGMENTS)} ({', '.join(sorted(set(mapped[unknown])))})",
                     int(unknown.sum()))
    return mapped.fillna(by_size).fillna("smb")


def channel_of(values: pd.Series) -> pd.Series:
    """Acquisition channel from a lead/account source picklist: partner, self_serve (web, trial, product), else direct."""
    slug = _slug(values).fillna("")
    out = pd.Series("direct", index=values.index, dtype="string")
    out = out.mask(slug.str.contains("self|web|online|trial|product_led|plg|signup|organic"), "self_serve")
    return out.mask(slug.str.contains("partner|reseller|channel|referral"), "partner")


def kind_of(values: pd.Series) -> pd.Series:
    """Opportunity kind from the deal type: renewal, cross_sell, upsell, new_business, else expansion."""
    slug = _slug(values).fillna("")
    out = pd.Series("expansion", index=values.index, dtype="string")
    out = out.mask(slug.str.contains("new"), "new_business")
    out = out.mask(slug.str.contains("upsell|upgrade|up_sell"), "upsell")
    out = out.mask(slug.str.contains("cross"), "cross_sell")
    return out.mask(slug.str.contains("renew"), "renewal")


def unique_rows(problems: Problems, table: str, a: pd.DataFrame) -> pd.DataFrame:
    """One row per ``id``: exact repeats collapse silently; rows of one id that differ keep the last (by
    ``last_modified_date``/``system_modstamp``/``property_hs_lastmodifieddate`` when present), counted with the ids."""
    a = a[~a.astype("string").duplicated()]
    dup = a["id"].duplicated(keep=False) & a["id"].notna()
    if dup.any():
        order = next((c for c in ("last_modified_date", "system_modstamp", "property_hs_lastmodifieddate", "updated_at")
                      if c in a), None)
        if order:
            a = a.assign(_order=timestamps(a[order])).sort_values("_order", kind="stable").drop(columns="_order")
        problems.ledger.coerce(table, "id", f"one id in several differing rows: the last kept (by {order or 'file order'})",
                               sorted(set(text(a.loc[dup.reindex(a.index), "id"]).dropna())))
    return a.drop_duplicates("id", keep="last")
