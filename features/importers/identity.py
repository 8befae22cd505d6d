"""The identity map across sources: Stripe customer <-> CRM account <-> product group, and the report on it.

The CRM's accounts are the contract's accounts; ``account_id`` is the CRM's own id or the
field named by ``[identity] account_id``. Every other source names the field (or
``metadata.<key>``) holding a CRM value (``match``) and the CRM field it equals (``to``,
default: the contract's ``account_id``). Defaults: Stripe ``metadata.account_id``,
product analytics the group id itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from features.importers.errors import ImportProblem
from features.importers.parse import field_or_metadata, ident, text
from features.importers.shapes import SourceTables

DEFAULT_MATCH = {"stripe": "metadata.account_id", "segment": "id", "rudderstack": "id", "amplitude": "id", "mixpanel": "id"}
EXAMPLES = 5


@dataclass
class SourceMatch:
    """How one source's accounts matched the CRM's."""

    source: str
    native_to_account: dict[str, str]
    unmatched: list[str]
    known: int

    @property
    def rate(self) -> float:
        return len(self.native_to_account) / self.known if self.known else 1.0


@dataclass
class IdentityMap:
    """Native id -> contract account_id per source, and what did not match."""

    crm: str
    account_ids: pd.Series  # CRM native id -> contract account_id
    matches: dict[str, SourceMatch] = field(default_factory=dict)


def crm_accounts(crm: SourceTables, config: dict) -> pd.Series:
    """CRM native id -> contract account_id (the CRM id, or the field ``[identity] account_id`` names)."""
    key = config.get("identity", {}).get("account_id", "id")
    values = field_or_metadata(crm.keys, key, strip=False)
    if values is None:
        raise_problem(crm.source, crm.key_table, key, "field named by [identity] account_id does not exist")
    native = text(crm.keys["id"])
    return pd.Series(values.fillna(native).to_numpy(), index=native.to_numpy(), dtype="string")


def raise_problem(source: str, table: str, column: str, rule: str, rows: int = 0) -> None:
    from features.importers.errors import ImportFailed

    raise ImportFailed([ImportProblem(source, table, column, rule, rows)])


def match_source(tables: SourceTables, crm: SourceTables, account_ids: pd.Series, config: dict,
                 used: set[str]) -> SourceMatch:
    """Match one source's accounts to CRM accounts; ``used`` = native ids its tables refer to."""
    settings = config.get(tables.source, {})
    spec = settings.get("match", DEFAULT_MATCH.get(tables.source, "id"))
    target = settings.get("to", "account_id")
    values = field_or_metadata(tables.keys, spec, strip=False)
    if values is None:
        raise_problem(tables.source, tables.key_table, spec, "field named as the identity match does not exist")
    if target == "account_id":
        lookup = pd.Series(account_ids.to_numpy(), index=account_ids.to_numpy())
    else:
        crm_values = field_or_metadata(crm.keys, target, strip=False)
        if crm_values is None:
            raise_problem(crm.source, crm.key_table, target, f"field named by [{tables.source}] to does not exist")
        lookup = pd.Series(account_ids.reindex(text(crm.keys["id"]).to_numpy()).to_numpy(), index=crm_values.to_numpy())
    lookup = lookup[lookup.index.notna() & ~lookup.index.duplicated(keep="first")]
    native = ident(tables.keys["id"])
    mapped = values.map(lookup)
    pairs = dict(zip(native[mapped.notna()], mapped[mapped.notna()]))
    unmatched = sorted({str(n) for n in native[mapped.isna()].dropna()} | (used - set(native.dropna()) - set(pairs)))
    unmatched = sorted(set(unmatched) & used) if used else unmatched
    return SourceMatch(tables.source, pairs, unmatched, len(set(native.dropna()) | used))


def unmatched_problem(m: SourceMatch, key_table: str, spec: str, crm: str) -> ImportProblem:
    shown = ", ".join(m.unmatched[:EXAMPLES]) + (" ..." if len(m.unmatched) > EXAMPLES else "")
    return ImportProblem(m.source, key_table, spec,
                         f"no matching {crm} account for {shown} (set unmatched = \"drop\" under [identity] to leave them out)",
                         len(m.unmatched))


def report(identity: IdentityMap, crm_count: int, billing_arr: pd.Series, crm_amount: pd.Series) -> dict:
    """Match rates per pair of sources, every unmatched id, and billing MRR (and ARR = 12 x MRR) against CRM
    amounts (won opportunities, in ARR) per account where both exist."""
    pairs = []
    for m in identity.matches.values():
        matched_accounts = set(m.native_to_account.values())
        pairs.append({"pair": f"{m.source} -> {identity.crm}", "accounts": m.known, "matched": len(m.native_to_account),
                      "match_rate": round(m.rate, 4), "crm_accounts_covered": len(matched_accounts),
                      "crm_coverage": round(len(matched_accounts) / crm_count, 4) if crm_count else None,
                      "unmatched": m.unmatched})
    sources = list(identity.matches.values())
    for i, a in enumerate(sources):
        for b in sources[i + 1:]:
            both = set(a.native_to_account.values()) & set(b.native_to_account.values())
            either = set(a.native_to_account.values()) | set(b.native_to_account.values())
            pairs.append({"pair": f"{a.source} <-> {b.source}", "accounts_in_either": len(either), "in_both": len(both),
                          "match_rate": round(len(both) / len(either), 4) if either else None})
    both = pd.DataFrame({"billing_mrr": (billing_arr / 12).round(2), "billing_arr": billing_arr, "crm_amount": crm_amount}).dropna()
    both["difference"] = (both["billing_arr"] - both["crm_amount"]).round(2)
    both["difference_pct"] = (100 * both["difference"] / both["crm_amount"].where(both["crm_amount"] != 0)).round(2)
    return {"pairs": pairs, "revenue": both.reset_index(names="account_id").to_dict("records")}
