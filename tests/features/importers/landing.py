"""Land API records (``tests/fixtures/importers``: Stripe and Salesforce objects as their APIs return them) the way
each connector documents it lands them, so one hand-computed truth checks every layout.

* Fivetran: singular snake_case tables, nested objects flattened with ``_`` (``recurring_interval``), foreign keys
  ``<object>_id``, discounts in ``subscription_discount`` / ``discount``, ISO timestamps, ``_fivetran_synced``;
  Salesforce fields in snake_case. One locale quirk: the EUR price's ``unit_amount_decimal`` written ``1200,00``.
* Airbyte: stream names (``customers``, ``subscription_items``, ``Account``), the API's fields with nested objects and
  lists as JSON text, epoch timestamps, ``_airbyte_raw_id`` / ``_airbyte_extracted_at`` / ``_airbyte_meta``.
* Stitch (Singer taps): stream names, ``plans`` rather than prices (items carry a ``plan`` object), nested JSON text,
  ``_sdc_*`` columns, and an older version of a row appended before the current one.
* dlt: endpoint names, nested objects flattened with ``__``, lists in child tables (``subscription__items__data``,
  ``price__tiers``) linked by ``_dlt_parent_id``, ``_dlt_id`` / ``_dlt_load_id``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "importers"
LAYOUTS = ("fivetran", "airbyte", "stitch", "dlt")
SYNCED = "2025-07-01 02:00:00"


def load(source: str, name: str) -> list[dict]:
    return json.loads((FIXTURES / source / f"{name}.json").read_text())


def _iso(epoch: object) -> object:
    if epoch in (None, ""):
        return None
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _write(folder: Path, table: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with open(folder / f"{table}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for row in rows:
            w.writerow({c: _text(row.get(c)) for c in columns})


def _text(value: object) -> object:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


# ---- Fivetran -------------------------------------------------------------------------------------------------------

def _fivetran_stripe(out: Path) -> None:
    prices = load("stripe", "prices")
    subs = load("stripe", "subscriptions")
    invoices = load("stripe", "invoices")
    _write(out, "customer", [{"id": c["id"], "created": _iso(c["created"]), "currency": c["currency"], "email": c["email"],
                              "name": c["name"], "metadata": c["metadata"], "is_deleted": False, "_fivetran_synced": SYNCED}
                             for c in load("stripe", "customers")])
    _write(out, "product", [{"id": p["id"], "name": p["name"], "active": p["active"], "created": _iso(p["created"])}
                            for p in load("stripe", "products")])
    _write(out, "price", [{
        "id": p["id"], "product_id": p["product"], "currency": p["currency"], "unit_amount": p["unit_amount"],
        "unit_amount_decimal": "1200,00" if p["id"] == "price_eur" else p["unit_amount_decimal"], "type": p["type"],
        "billing_scheme": p["billing_scheme"], "tiers_mode": p["tiers_mode"], "tiers": p.get("tiers"),
        "recurring_interval": (p["recurring"] or {}).get("interval"), "recurring_interval_count": (p["recurring"] or {}).get("interval_count"),
        "recurring_usage_type": (p["recurring"] or {}).get("usage_type"), "nickname": p["nickname"], "metadata": p["metadata"],
        "active": p["active"], "_fivetran_synced": SYNCED} for p in prices])
    _write(out, "coupon", [{k: c[k] for k in ("id", "amount_off", "currency", "duration", "percent_off", "valid")} for c in load("stripe", "coupons")])
    _write(out, "subscription", [{
        "id": s["id"], "customer_id": s["customer"], "status": s["status"], "start_date": _iso(s["start_date"]), "created": _iso(s["created"]),
        "trial_start": _iso(s["trial_start"]), "trial_end": _iso(s["trial_end"]), "ended_at": _iso(s["ended_at"]),
        "canceled_at": _iso(s["canceled_at"]), "current_period_start": _iso(s["current_period_start"]),
        "pause_collection_behavior": (s["pause_collection"] or {}).get("behavior"),
        "pause_collection_resumes_at": _iso((s["pause_collection"] or {}).get("resumes_at")),
        "metadata": s["metadata"], "_fivetran_synced": SYNCED} for s in subs])
    items = [i for s in subs for i in s["items"]["data"]]
    _write(out, "subscription_item", [{"id": i["id"], "subscription_id": i["subscription"], "price_id": i["price"]["id"],
                                       "quantity": i.get("quantity"), "created": _iso(i["created"]), "metadata": i["metadata"]}
                                      for i in items])
    _write(out, "subscription_discount", [{"id": s["discount"]["id"], "coupon_id": s["discount"]["coupon"]["id"], "customer_id": s["customer"],
                                           "subscription_id": s["id"], "start": _iso(s["discount"]["start"]), "end": _iso(s["discount"]["end"])}
                                          for s in subs if s["discount"]])
    _write(out, "discount", [{"id": d["id"], "type": "subscription_item", "type_id": i["id"], "coupon_id": d["coupon"]["id"],
                              "subscription_item_id": i["id"], "start": _iso(d["start"]), "end": _iso(d["end"])}
                             for i in items for d in i["discounts"]])
    _write(out, "invoice", [{
        "id": v["id"], "customer_id": v["customer"], "subscription_id": v["subscription"], "currency": v["currency"],
        "amount_due": v["amount_due"], "amount_paid": v["amount_paid"], "status": v["status"], "paid": v["paid"],
        "created": _iso(v["created"]), "due_date": _iso(v["due_date"]), "period_start": _iso(v["period_start"]),
        "period_end": _iso(v["period_end"]), "status_transitions_paid_at": _iso(v["status_transitions"]["paid_at"])} for v in invoices])
    _write(out, "invoice_line_item", [{
        "id": line["id"], "invoice_id": v["id"], "amount": line["amount"], "currency": line["currency"],
        "period_start": _iso(line["period"]["start"]), "period_end": _iso(line["period"]["end"]), "price_id": line["price"]["id"],
        "subscription_id": line["subscription"], "subscription_item_id": line["subscription_item"], "type": line["type"],
        "proration": line["proration"], "quantity": line["quantity"]} for v in invoices for line in v["lines"]["data"]])


def _snake_fields(record: dict) -> dict:
    import re

    out = {}
    for k, v in record.items():
        if k == "attributes":
            continue
        name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", k).lower().replace("__c", "_c")
        out[name] = v
    return out


def _fivetran_salesforce(out: Path) -> None:
    for name, table in (("Account", "account"), ("User", "user"), ("Opportunity", "opportunity"),
                        ("OpportunityHistory", "opportunity_history")):
        _write(out, table, [{**_snake_fields(r), "_fivetran_synced": SYNCED} for r in load("salesforce", name)])


# ---- Airbyte and Stitch: the API's records, nested values as JSON text -----------------------------------------------

_STRIPE_STREAMS = {"customers": "customers", "products": "products", "prices": "prices", "coupons": "coupons",
                   "subscriptions": "subscriptions", "invoices": "invoices"}


def _stripe_streams() -> dict[str, list[dict]]:
    subs = load("stripe", "subscriptions")
    invoices = load("stripe", "invoices")
    streams = {name: load("stripe", name) for name in _STRIPE_STREAMS}
    streams["subscription_items"] = [i for s in subs for i in s["items"]["data"]]
    streams["invoice_line_items"] = [{**line, "invoice_id": v["id"]} for v in invoices for line in v["lines"]["data"]]
    return streams


def _airbyte(out: Path, streams: dict[str, list[dict]]) -> None:
    for name, rows in streams.items():
        _write(out, name, [{**{k: v for k, v in r.items() if k != "attributes"},
                            "_airbyte_raw_id": f"{name}-{n}", "_airbyte_extracted_at": "2025-07-01T02:00:00Z",
                            "_airbyte_meta": {"changes": [], "sync_id": 7}} for n, r in enumerate(rows)])


def _as_plan(price: dict) -> dict:
    recurring = price["recurring"] or {}
    return {"id": price["id"], "object": "plan", "active": price["active"], "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"], "billing_scheme": price["billing_scheme"], "currency": price["currency"],
            "interval": recurring.get("interval"), "interval_count": recurring.get("interval_count"), "nickname": price["nickname"],
            "product": price["product"], "tiers": price.get("tiers"), "tiers_mode": price["tiers_mode"],
            "usage_type": recurring.get("usage_type"), "metadata": price["metadata"]}


def _stitch(out: Path, streams: dict[str, list[dict]], older: dict[str, dict]) -> None:
    for name, rows in streams.items():
        landed = []
        for n, r in enumerate(rows):
            if r.get("id") in older.get(name, {}):
                landed.append({**r, **older[name][r["id"]], "_sdc_extracted_at": "2025-06-01T02:00:00Z",
                               "_sdc_batched_at": "2025-06-01T02:01:00Z", "_sdc_sequence": n, "_sdc_table_version": 1})
            landed.append({**{k: v for k, v in r.items() if k != "attributes"}, "_sdc_extracted_at": "2025-07-01T02:00:00Z",
                           "_sdc_batched_at": "2025-07-01T02:01:00Z", "_sdc_received_at": "2025-07-01T02:00:30Z",
                           "_sdc_sequence": 1000 + n, "_sdc_table_version": 1})
        _write(out, name, landed)


def _stitch_stripe(out: Path) -> None:
    streams = _stripe_streams()
    streams["plans"] = [_as_plan(p) for p in streams.pop("prices")]
    streams["subscription_items"] = [{**{k: v for k, v in i.items() if k != "price"}, "plan": _as_plan(i["price"])}
                                     for i in streams["subscription_items"]]
    for line in streams["invoice_line_items"]:
        line["plan"] = _as_plan(line.pop("price"))
    _stitch(out, streams, {"customers": {"cus_beta": {"name": "Beta (old name)", "email": "old@beta.example"}}})


def _salesforce_streams() -> dict[str, list[dict]]:
    return {name: load("salesforce", name) for name in ("Account", "User", "Opportunity", "OpportunityHistory")}


# ---- dlt: nested objects flattened with "__", lists in child tables ------------------------------------------------

def _dlt_rows(table: str, records: list[dict], out: dict[str, list[dict]], parent: str | None = None) -> None:
    for n, record in enumerate(records):
        row: dict = {}
        own = f"{table}-{parent or ''}-{n}"
        _dlt_flatten(table, "", record, row, out, own)
        row["_dlt_id"] = own
        if parent is None:
            row["_dlt_load_id"] = "1751335200.0"
        else:
            row["_dlt_parent_id"], row["_dlt_list_idx"] = parent, n
        out.setdefault(table, []).append(row)


def _dlt_flatten(table: str, prefix: str, record: dict, row: dict, out: dict[str, list[dict]], own: str) -> None:
    import re

    for key, value in record.items():
        name = prefix + re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()  # dlt's snake_case naming convention
        if isinstance(value, dict):
            _dlt_flatten(table, f"{name}__", value, row, out, own)
        elif isinstance(value, list):
            children = [v if isinstance(v, dict) else {"value": v} for v in value]
            _dlt_rows(f"{table}__{name}", children, out, own)
        else:
            row[name] = value


def _dlt(out: Path, streams: dict[str, list[dict]]) -> None:
    tables: dict[str, list[dict]] = {}
    for name, rows in streams.items():
        _dlt_rows(name, [{k: v for k, v in r.items() if k != "attributes"} for r in rows], tables)
    for name, rows in tables.items():
        _write(out, name, rows)


def _dlt_stripe_streams() -> dict[str, list[dict]]:
    return {"customer": load("stripe", "customers"), "product": load("stripe", "products"), "price": load("stripe", "prices"),
            "coupon": load("stripe", "coupons"), "subscription": load("stripe", "subscriptions"), "invoice": load("stripe", "invoices")}


def land(layout: str, root: Path) -> Path:
    """Stripe and Salesforce as ``layout`` lands them, plus Segment's warehouse ``tracks``, under ``root``."""
    import shutil

    if layout == "fivetran":
        _fivetran_stripe(root / "stripe")
        _fivetran_salesforce(root / "salesforce")
    elif layout == "airbyte":
        _airbyte(root / "stripe", _stripe_streams())
        _airbyte(root / "salesforce", _salesforce_streams())
    elif layout == "stitch":
        _stitch_stripe(root / "stripe")
        _stitch(root / "salesforce", _salesforce_streams(), {})
    elif layout == "dlt":
        _dlt(root / "stripe", _dlt_stripe_streams())
        _dlt(root / "salesforce", {"account": load("salesforce", "Account"), "user": load("salesforce", "User"),
                                   "opportunity": load("salesforce", "Opportunity"),
                                   "opportunity_history": load("salesforce", "OpportunityHistory")})
    else:
        raise ValueError(layout)
    (root / "segment").mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "segment" / "tracks.csv", root / "segment" / "tracks.csv")
    return root


def land_airbyte_apps(root: Path) -> Path:
    """HubSpot (``companies``, ``deals``, ``owners``: v3 objects, ``properties`` and associations as JSON), Amplitude
    (``events``) and Mixpanel (``export``) as Airbyte lands their streams, under ``root``."""
    _airbyte(root / "hubspot", {name: load("hubspot", name) for name in ("companies", "deals", "owners")})
    _airbyte(root / "amplitude", {"events": load("amplitude", "events")})
    _airbyte(root / "mixpanel", {"export": load("mixpanel", "export")})
    return root
