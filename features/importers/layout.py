"""The layout layer: any connector's tables and columns into the one shape the source readers ask for.

Connectors land the same objects differently:

* **Fivetran**: singular tables (``customer``, ``subscription_item``), snake_case fields, nested
  objects flattened with ``_`` (``recurring_interval``), foreign keys as ``customer_id``,
  ``_fivetran_*`` columns (history mode). This is the shape the readers ask for.
* **Airbyte**: stream names (``customers``, ``subscription_items``, ``companies``, ``Account``,
  ``export``), the API's own field names (``customer`` holding an id, ``NumberOfEmployees``),
  nested objects as JSON text (``recurring``, ``discount``, ``properties``), ``_airbyte_*`` metadata;
  older raw tables keep the whole record in ``_airbyte_data``.
* **Stitch / Singer**: stream names as Airbyte, nested objects as JSON, ``_sdc_*`` metadata,
  appended versions of a row (the latest ``_sdc_extracted_at`` / ``_sdc_batched_at`` wins).
* **dlt**: endpoint names, nested objects flattened with ``__`` (``recurring__interval``), lists in
  child tables (``subscription__items__data``), ``_dlt_*`` metadata.

Each table is reshaped on read: table names resolved through the aliases, ``CamelCase`` and
``Field__c`` names made snake_case (``NumberOfEmployees`` -> ``number_of_employees``, ``Segment__c``
-> ``segment_c``), ``__`` made ``_``, JSON objects flattened into ``<column>_<key>`` columns, an
object or id in a reference column (``customer``, ``price``...) made ``<name>_id``, HubSpot's
``properties_*`` made ``property_*``, metadata columns dropped after use (deletions, the latest
appended version). The layout is detected from the files (metadata columns, then table names) and
can be forced with ``--layout``; a map file renames tables (``[stripe.tables] customer = "..."``)
and columns (``[stripe.columns.customer] customer_id = "cust"`` or a JSON path ``"price.id"``).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from features.importers.errors import Ledger

LAYOUTS = ("fivetran", "airbyte", "stitch", "dlt")
_META = {"airbyte": "_airbyte_", "stitch": "_sdc_", "dlt": "_dlt_", "fivetran": "_fivetran_"}
_FLAT_SOURCES = ("stripe", "salesforce", "hubspot")  # event tables are big and read their JSON explicitly
EVENT_SOURCES = ("segment", "rudderstack", "amplitude", "mixpanel")

#: canonical table -> other names it is landed under, per source (after lower snake_case and prefix stripping).
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "stripe": {
        "customer": ("customers",), "subscription": ("subscriptions",),
        "subscription_item": ("subscription_items", "subscriptions_items"),
        "price": ("prices",), "plan": ("plans",), "product": ("products",), "coupon": ("coupons",),
        "invoice": ("invoices",), "discount": ("discounts",), "price_tier": ("price_tiers", "prices_tiers"),
        "plan_tier": ("plan_tiers", "plans_tiers"),
        "subscription_item_discount": ("subscription_items_data_discounts", "subscription_items_discounts"),
        "invoice_line_item": ("invoice_line_items", "invoice_lines", "invoices_lines", "line_items"),
    },
    "salesforce": {"account": ("accounts",), "opportunity": ("opportunities",), "user": ("users",),
                   "opportunity_history": ("opportunity_histories",)},
    "hubspot": {"company": ("companies",), "deal": ("deals",), "owner": ("owners",), "contact": ("contacts",),
                "deal_company": ("deals_companies", "deal_companies"),
                "engagement_meeting": ("meetings", "engagements_meetings"), "engagement_call": ("calls", "engagements_calls"),
                "engagement_email": ("emails", "engagements_emails"), "deal_pipeline_stage": ("deal_pipelines_stages",)},
    "amplitude": {"event": ("events", "export", "event_raw")},
    "mixpanel": {"event": ("events", "export", "engage_events")},
    "segment": {}, "rudderstack": {},
}
#: reference columns holding another object's id (API shape): ``customer`` -> ``customer_id``.
_REFERENCES = ("customer", "subscription", "subscription_item", "price", "plan", "product", "coupon", "invoice",
               "account", "owner", "opportunity")


def snake(name: str) -> str:
    """``NumberOfEmployees`` -> ``number_of_employees``, ``Segment__c`` -> ``segment_c``, ``recurring__interval`` ->
    ``recurring_interval``; snake_case names unchanged."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s).lower()
    return re.sub(r"_{2,}", "_", s).strip("_") if not s.startswith("_") else "_" + re.sub(r"_{2,}", "_", s[1:]).strip("_")


def table_name(source: str, found: str) -> str:
    """The canonical name of a landed table (``Account``, ``subscription_items``, ``_airbyte_raw_customers``)."""
    base = snake(re.sub(r"^_airbyte_raw_", "", found))
    for canonical, others in ALIASES.get(source, {}).items():
        if base == canonical or base in others:
            return canonical
    return base


def detect(columns: list[str], names: list[str]) -> str:
    """The layout of a source from its column names (metadata prefixes), else its table names."""
    lowered = [c.lower() for c in columns]
    for layout in ("airbyte", "stitch", "dlt", "fivetran"):
        if any(c.startswith(_META[layout]) for c in lowered):
            return layout
    if any(n != snake(n) for n in names) or any("__" in c for c in columns):
        return "dlt" if any("__" in c and not c.lower().endswith("__c") for c in columns) else "airbyte"
    return "fivetran"


def _json_object(value: object) -> dict | None:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.startswith("{"):
        return None
    try:
        got = json.loads(value)
    except ValueError:
        return None
    return got if isinstance(got, dict) else None


def _flatten(frame: pd.DataFrame, depth: int = 3) -> pd.DataFrame:
    """JSON-object columns flattened into ``<column>_<key>`` (nested objects too, up to ``depth``); the column kept.

    ``metadata`` is left whole (its keys are read from the JSON where asked for). Each distinct text is parsed once."""
    for _ in range(depth):
        added = {}
        for col in list(frame.columns):
            if col == "metadata" or col in added:
                continue
            sample = frame[col].dropna()
            if sample.empty or not (isinstance(sample.iloc[0], dict) or (isinstance(sample.iloc[0], str) and sample.iloc[0][:1] == "{")):
                continue
            values = frame[col].map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v)
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            objects = [_json_object(u) for u in uniques]
            keys = sorted({k for o in objects if o for k in o})
            for key in keys:
                name = f"{col}_{snake(str(key))}"
                if name in frame.columns or name in added:
                    continue
                cells = np.array([_cell(o.get(key)) if o else None for o in objects] + [None], dtype=object)
                added[name] = cells[codes]
        if not added:
            return frame
        frame = pd.concat([frame, pd.DataFrame(added, index=frame.index)], axis=1)
    return frame


def _cell(value: object) -> object:
    """A nested value as a flat cell: objects and lists as JSON text, the rest as is."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _latest(frame: pd.DataFrame, ledger: Ledger | None, table: str) -> pd.DataFrame:
    """Appended versions of a row (same ``id``): the latest extracted wins, counted; deletions dropped."""
    for flag in ("_sdc_deleted_at", "_ab_cdc_deleted_at"):
        if flag in frame and "is_deleted" not in frame:
            frame = frame.assign(is_deleted=frame[flag].notna() & (frame[flag].astype("string").str.strip() != ""))
    if "_fivetran_deleted" in frame and "is_deleted" not in frame:
        frame = frame.assign(is_deleted=frame["_fivetran_deleted"])
    if "id" not in frame or "_fivetran_start" in frame:
        return frame
    order = next((c for c in ("_sdc_extracted_at", "_sdc_batched_at", "_airbyte_extracted_at", "_airbyte_emitted_at",
                              "_dlt_load_id", "updated", "updated_at", "systemmodstamp", "system_modstamp") if c in frame), None)
    dup = frame["id"].duplicated(keep=False) & frame["id"].notna()
    if not dup.any():
        return frame
    if order is not None:
        frame = frame.sort_values(order, kind="stable")
    kept = frame.drop_duplicates("id", keep="last")
    if ledger is not None:
        ledger.coerce(table, "id", f"appended versions of one row: the latest kept (by {order or 'file order'})",
                      frame.loc[frame["id"].duplicated(keep="last"), "id"])
    return kept


def shape(source: str, table: str, frame: pd.DataFrame, columns_map: dict | None = None,
          ledger: Ledger | None = None) -> pd.DataFrame:
    """One landed table in the readers' shape (see the module docstring)."""
    if "_airbyte_data" in frame and len([c for c in frame if not str(c).startswith("_airbyte_")]) == 0:
        records = [{k: _cell(x) for k, x in (json.loads(v) if isinstance(v, str) else (v or {})).items()}
                   for v in frame["_airbyte_data"]]  # nested values as JSON text, as the other layouts give them
        frame = pd.concat([pd.DataFrame.from_records(records, index=frame.index), frame.drop(columns="_airbyte_data")], axis=1)
    for canonical, spec in (columns_map or {}).items():
        frame = _mapped(frame, canonical, spec)
    if source in _FLAT_SOURCES:
        frame = frame.rename(columns={c: snake(str(c)) for c in frame.columns})
        frame = frame.loc[:, ~frame.columns.duplicated()]
        frame = _flatten(frame)
        if source == "hubspot":
            frame = _hubspot(table, frame)
        for ref in _REFERENCES:
            if ref in frame and f"{ref}_id" not in frame and ref != table:
                frame[f"{ref}_id"] = frame[ref].map(_reference)
    else:
        frame.columns = [str(c).lower() for c in frame.columns]
        frame = frame.rename(columns=event_renames(source, list(frame.columns)))
    frame = _latest(frame, ledger, table)
    frame = frame.rename(columns={"_dlt_id": "dlt_id", "_dlt_parent_id": "dlt_parent_id"})  # links of dlt's child tables
    return frame.drop(columns=[c for c in frame.columns if str(c).startswith(("_airbyte_", "_sdc_", "_dlt_", "_ab_"))])


_HUBSPOT_OBJECTS = ("company", "deal", "contact", "engagement_meeting", "engagement_call", "engagement_email")
_HUBSPOT_TOP = ("id", "is_deleted", "archived", "archived_at", "created_at", "updated_at", "companies", "contacts",
                "associations", "dlt_id", "dlt_parent_id")


def _hubspot(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """HubSpot's objects in any layout as Fivetran's ``property_<name>`` columns.

    The v2 API (the Singer tap) gives each property as an object ``{"value", "timestamp", "source"}``: its ``value`` is
    the property. dlt's source lands the properties as the row itself (``name``, ``numberofemployees``): each becomes
    ``property_<name>``. The v2 id (``companyId``) is the object's ``id``; the deal's companies sit in
    ``associations.associatedCompanyIds`` (v2) or dlt's child table ``deals__companies`` (``value`` = the deal's id).
    """
    if "id" not in frame and f"{table}_id" in frame:
        frame = frame.assign(id=frame[f"{table}_id"])
    wrapped = [c for c in frame.columns if c.startswith("properties_") and f"{c}_value" in frame]
    if wrapped:
        frame = frame.assign(**{c: frame[f"{c}_value"] for c in wrapped})
    frame = frame.rename(columns={c: "property_" + c[len("properties_"):] for c in frame.columns
                                  if c.startswith("properties_") and "property_" + c[len("properties_"):] not in frame})
    if "associations_associated_company_ids" in frame and "companies" not in frame:
        frame = frame.assign(companies=frame["associations_associated_company_ids"])
    landed_by_dlt = "_dlt_id" in frame or "_dlt_load_id" in frame  # (Fivetran's older engagement columns stay as they are)
    if (landed_by_dlt and table in _HUBSPOT_OBJECTS and "properties" not in frame
            and not any(c.startswith("property_") for c in frame.columns)):
        frame = frame.rename(columns={c: f"property_{c}" for c in frame.columns
                                      if c not in _HUBSPOT_TOP and not c.startswith("_")})
    if table == "deal_company" and "companies_id" in frame and "company_id" not in frame:
        frame = frame.assign(company_id=frame["companies_id"], deal_id=frame.get("value", frame.get("deal_id")))
    return frame


def event_renames(source: str, columns: list[str]) -> dict[str, str]:
    """Event tables' columns as the readers name them (lower case given): dlt's ``__`` (``properties__company_id``,
    ``context__group_id``) as ``_``; the Singer Mixpanel tap's ``mp_reserved_<x>`` (for ``$<x>``) as ``<x>``;
    Segment's ``messageId`` landed as ``message_id`` as the warehouse's ``id``. A name already present is kept."""
    out: dict[str, str] = {}
    taken = set(columns)
    for c in columns:
        new = c
        if "__" in c and not c.startswith("_"):
            new = re.sub(r"_{2,}", "_", c)
        if source == "mixpanel" and c.startswith("mp_reserved_"):
            new = c[len("mp_reserved_"):]
        if source in ("segment", "rudderstack") and c == "message_id":
            new = "id"
        if new != c and new not in taken:
            out[c] = new
            taken.add(new)
    return out


def _reference(value: object) -> object:
    obj = _json_object(value)
    if obj is not None:
        return obj.get("id")
    return value


def _mapped(frame: pd.DataFrame, canonical: str, spec: str) -> pd.DataFrame:
    """``canonical`` taken from the column ``spec``, or from the JSON path ``column.key[.key]``."""
    if spec in frame:
        return frame.rename(columns={spec: canonical})
    head, _, path = spec.partition(".")
    if head in frame and path:
        def walk(value: object) -> object:
            obj: object = _json_object(value)
            for key in path.split("."):
                obj = obj.get(key) if isinstance(obj, dict) else None
            return _cell(obj)
        return frame.assign(**{canonical: frame[head].map(walk)})
    return frame
