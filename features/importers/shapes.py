"""What each source module returns: contract tables keyed by the source's own account ids, and its account records."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from features.importers.errors import Ledger

#: The sources ``expansion import`` knows, and the contract tables each can give.
SOURCES: dict[str, tuple[str, ...]] = {
    "stripe": ("subscriptions", "payments", "products"),
    "salesforce": ("accounts", "opportunities", "opportunity_stages"),
    "hubspot": ("accounts", "opportunities", "opportunity_stages", "activities"),
    "segment": ("usage_daily",),
    "rudderstack": ("usage_daily",),
    "amplitude": ("usage_daily",),
    "mixpanel": ("usage_daily",),
}
CRM_SOURCES = ("salesforce", "hubspot")


@dataclass
class SourceTables:
    """Contract tables read from one source (``account_id`` = the source's own account id) and its account records.

    ``keys`` holds one row per account the source knows (column ``id`` = its own id, plus every field an
    identity map may match on); ``key_table`` names the raw table they come from, for messages.
    """

    source: str
    tables: dict[str, pd.DataFrame]
    keys: pd.DataFrame
    key_table: str
    notes: list[str] = field(default_factory=list)
    ledger: Ledger | None = None
    layout: str = "fivetran"
