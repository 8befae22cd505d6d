"""Land the HubSpot, Amplitude, Mixpanel and Segment fixtures (``tests/fixtures/importers``) the way each connector
documents it lands them, in the four layouts (the Stripe and Salesforce landings are in ``landing.py``).

* HubSpot. Fivetran: ``company``/``deal``/``owner``/``deal_company``, properties as ``property_<name>`` columns, the
  deal's id as ``deal_id``, the owner's as ``owner_id``. Airbyte: the v3 objects (``companies``, ``deals``,
  ``owners``) with ``properties`` as JSON and flattened ``properties_<name>`` columns, associations as JSON lists.
  Stitch (the Singer tap, HubSpot's v2 API): ``companyId``/``dealId``/``ownerId``, every property an object
  ``{"value", "timestamp", "source"}``, dates as epoch milliseconds, a deal's companies in
  ``associations.associatedCompanyIds``. dlt (its verified source): the properties as the row itself (``name``,
  ``numberofemployees``), the deal's associations in the child table ``deals__companies`` (``value`` = the deal's id,
  ``companies_id``).
* Amplitude (``event``/``events``) and Mixpanel (``event``/``export``): Fivetran and Airbyte with nested objects as
  JSON text; Stitch's Mixpanel tap flattening ``properties`` into columns (``$`` as ``mp_reserved_``); dlt flattening
  objects with ``__`` (``properties__company_id``) and lists into child tables (``events__groups__company``).
* Segment (and RudderStack, the same warehouse schema): its own warehouse ``tracks``, as replicated by Fivetran,
  Airbyte or Stitch (their metadata columns added); dlt landing the track calls themselves (``context__group_id``).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from landing import FIXTURES, SYNCED, _airbyte, _dlt, _stitch, _write, load


def _ms(iso: str | None) -> str | None:
    if not iso:
        return None
    return str(int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000))


_DATES = ("createdate", "closedate")


def land_hubspot(layout: str, out: Path) -> None:
    companies, deals, owners = (load("hubspot", n) for n in ("companies", "deals", "owners"))
    if layout == "fivetran":
        _write(out, "company", [{"id": c["id"], "is_deleted": False, **{f"property_{k}": v for k, v in c["properties"].items()},
                                 "_fivetran_synced": SYNCED} for c in companies])
        _write(out, "deal", [{"deal_id": d["id"], "is_deleted": False, "deal_pipeline_id": d["properties"]["pipeline"],
                              "owner_id": d["properties"]["hubspot_owner_id"],
                              **{f"property_{k}": v for k, v in d["properties"].items()}, "_fivetran_synced": SYNCED}
                             for d in deals])
        _write(out, "deal_company", [{"company_id": c, "deal_id": d["id"], "type_id": 5, "_fivetran_synced": SYNCED}
                                     for d in deals for c in d["companies"]])
        _write(out, "owner", [{"owner_id": o["id"], "email": o["email"], "first_name": o["firstName"], "last_name": o["lastName"],
                               "is_active": True, "_fivetran_synced": SYNCED} for o in owners])
    elif layout == "airbyte":
        _airbyte(out, {name: [{**r, **{f"properties_{k}": v for k, v in r.get("properties", {}).items()}} for r in rows]
                       for name, rows in (("companies", companies), ("deals", deals), ("owners", owners))})
    elif layout == "stitch":
        def v2(props: dict) -> dict:
            return {k: {"value": _ms(v) if k in _DATES else v, "timestamp": 1748768400000, "source": "CRM_UI",
                        "sourceId": None} for k, v in props.items() if v is not None}
        _stitch(out, {
            "companies": [{"companyId": int(c["id"]), "portalId": 62515, "isDeleted": False, "properties": v2(c["properties"])}
                          for c in companies],
            "deals": [{"dealId": int(d["id"]), "portalId": 62515, "isDeleted": False,
                       "associations": {"associatedVids": [], "associatedCompanyIds": [int(c) for c in d["companies"]],
                                        "associatedDealIds": []}, "properties": v2(d["properties"])} for d in deals],
            "owners": [{"ownerId": int(o["id"]), "portalId": 62515, "type": "PERSON", "firstName": o["firstName"],
                        "lastName": o["lastName"], "email": o["email"], "isActive": True} for o in owners],
        }, {})
    elif layout == "dlt":
        _dlt(out, {
            "companies": [{**c["properties"], "id": c["id"]} for c in companies],
            "deals": [{**d["properties"], "id": d["id"],
                       "companies": [{"value": d["id"], "companies_id": c} for c in d["companies"]]} for d in deals],
            "owners": [{"id": o["id"], "email": o["email"], "firstName": o["firstName"], "lastName": o["lastName"],
                        "archived": False} for o in owners],
        })
    else:
        raise ValueError(layout)


def land_amplitude(layout: str, out: Path) -> None:
    events = load("amplitude", "events")
    if layout == "fivetran":
        _write(out, "event", [{"id": f"{e['uuid']}-{n}", **{k.lstrip("$"): v for k, v in e.items()}, "_fivetran_synced": SYNCED}
                              for n, e in enumerate(events)])
    elif layout == "airbyte":
        _airbyte(out, {"events": events})
    elif layout == "stitch":
        _stitch(out, {"events": events}, {})
    elif layout == "dlt":
        _dlt(out, {"events": [{k.replace("$", "_"): v for k, v in e.items()} for e in events]})
    else:
        raise ValueError(layout)


def land_mixpanel(layout: str, out: Path) -> None:
    events = load("mixpanel", "export")

    def iso(e: dict) -> str:
        return dt.datetime.fromtimestamp(e["time"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    if layout == "fivetran":
        _write(out, "event", [{"_fivetran_id": e["insert_id"], "name": e["event"], "time": iso(e), "distinct_id": e["distinct_id"],
                               "insert_id": e["insert_id"], "properties": e["properties"], "_fivetran_synced": SYNCED}
                              for e in events])
    elif layout == "airbyte":
        _airbyte(out, {"export": events})
    elif layout == "stitch":  # tap-mixpanel: properties de-nested into columns, "$" written "mp_reserved_"
        _stitch(out, {"export": [{"event": e["event"], "time": iso(e), "distinct_id": e["distinct_id"],
                                  "mp_reserved_insert_id": e["insert_id"],
                                  **{k.replace("$", "mp_reserved_"): v for k, v in e["properties"].items()}} for e in events]}, {})
    elif layout == "dlt":
        _dlt(out, {"export": [{**e, "properties": {k.replace("$", "_"): v for k, v in e["properties"].items()}} for e in events]})
    else:
        raise ValueError(layout)


def land_segment(layout: str, out: Path) -> None:
    with open(FIXTURES / "segment" / "tracks.csv", newline="") as f:
        tracks = list(csv.DictReader(f))
    meta = {"fivetran": {"_fivetran_synced": SYNCED, "_fivetran_deleted": "false"},
            "airbyte": {"_airbyte_raw_id": "r", "_airbyte_extracted_at": "2025-07-01T02:00:00Z", "_airbyte_meta": "{}"},
            "stitch": {"_sdc_extracted_at": "2025-07-01T02:00:00Z", "_sdc_batched_at": "2025-07-01T02:01:00Z"}}
    if layout in meta:
        _write(out, "tracks", [{**t, "uuid_ts": t["received_at"], **meta[layout]} for t in tracks])
    elif layout == "dlt":  # the track calls as Segment sends them: context.groupId flattened with "__"
        _dlt(out, {"tracks": [{"messageId": t["id"], "anonymousId": t["anonymous_id"] or None, "userId": t["user_id"],
                               "event": t["event"], "timestamp": t["timestamp"], "receivedAt": t["received_at"],
                               "context": {"groupId": t["context_group_id"] or None, "library": {"name": "analytics.js"}}}
                              for t in tracks]})
    else:
        raise ValueError(layout)
