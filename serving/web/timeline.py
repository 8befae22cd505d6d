"""An account's timeline: tickets, survey answers, meetings and executive touches, late or failed payments,
deals and their stage moves from the raw contract tables, plus the plays logged and the score moves.

The raw-table events of every account over the 12 months before the snapshot date are read
once per snapshot (one query) and kept sorted by account, so an account's slice is found by
binary search. Nothing after the snapshot date is read. Rows are ``{"at", "kind", "text", "amount"}``
(the page writes the amount as money after the text), newest first; ``kind`` is one of :data:`KINDS`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from serving.web.company import CompanyData, _months_back

#: Kinds of timeline rows, with the label the page shows.
KINDS = {"ticket": "support", "survey": "survey", "touch": "touch", "payment": "payment", "deal": "deal",
         "stage": "deal stage", "play": "play", "score": "score"}
MAX_ROWS = 80

_PARTS = {
    "support_tickets": """SELECT account_id, created_at AS happened, 'ticket' AS kind,
        'Ticket opened: ' || replace(category, '_', ' ') || ', ' || priority || ' priority' ||
        CASE WHEN resolved_at IS NULL OR resolved_at > $2 THEN ' (open)'
             ELSE ' (resolved in ' || CAST(date_diff('day', created_at, resolved_at) AS VARCHAR) || ' days' ||
                  CASE WHEN csat IS NULL THEN '' ELSE ', CSAT ' || regexp_replace(CAST(round(csat, 1) AS VARCHAR), '\.0$', '') END || ')' END AS text,
        NULL AS amount
        FROM support_tickets WHERE created_at >= $1 AND created_at < $2""",
    "surveys": """SELECT account_id, responded_at AS happened, 'survey' AS kind,
        upper(v.kind) || ' ' || regexp_replace(CAST(round(score, 1) AS VARCHAR), '\.0$', '') || ' from ' || CASE WHEN respondent_role = 'executive'
        THEN 'an executive' ELSE 'a ' || respondent_role END AS text, NULL AS amount
        FROM surveys v WHERE responded_at >= $1 AND responded_at < $2""",
    "activities": """SELECT account_id, occurred_at AS happened, 'touch' AS kind,
        CASE a.kind WHEN 'qbr' THEN 'QBR' ELSE upper(a.kind[1]) || a.kind[2:] END ||
        CASE WHEN with_executive THEN ' with an executive' ELSE '' END AS text, NULL AS amount
        FROM activities a WHERE occurred_at >= $1 AND occurred_at < $2 AND (a.kind <> 'email' OR with_executive)""",
    "payments": """SELECT account_id, CAST(due_date AS TIMESTAMP) AS happened, 'payment' AS kind,
        'Invoice ' || CASE status WHEN 'failed' THEN 'payment failed' ELSE 'paid late' ||
        CASE WHEN paid_at IS NULL THEN '' ELSE ' (' || CAST(date_diff('day', CAST(due_date AS TIMESTAMP), paid_at)
        AS VARCHAR) || ' days)' END END || ', invoice of' AS text, amount
        FROM payments WHERE status IN ('late', 'failed') AND CAST(due_date AS TIMESTAMP) >= $1
        AND CAST(due_date AS TIMESTAMP) < $2""",
    "opportunities": """SELECT account_id, created_at AS happened, 'deal' AS kind,
        'Deal opened: ' || replace(o.kind, '_', ' ') || ', ARR' AS text, amount
        FROM opportunities o WHERE created_at >= $1 AND created_at < $2
        UNION ALL
        SELECT account_id, closed_at AS happened, 'deal' AS kind,
        'Deal ' || outcome || ': ' || replace(o.kind, '_', ' ') || ', ARR' AS text, amount
        FROM opportunities o WHERE closed_at >= $1 AND closed_at < $2 AND outcome IN ('won', 'lost')""",
    "opportunity_stages": """SELECT o.account_id, s.entered_at AS happened, 'stage' AS kind,
        'Deal (' || replace(o.kind, '_', ' ') || ') moved to ' || replace(s.stage, '_', ' ') AS text, NULL AS amount
        FROM opportunity_stages s JOIN opportunities o USING (opportunity_id)
        WHERE s.entered_at >= $1 AND s.entered_at < $2""",
}


class CompanyEvents:
    """The raw-table events of every account, sorted by account then newest first, for one snapshot date."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.reset_index(drop=True)
        self.accounts = self.frame["account_id"].to_numpy(dtype=str)
        self.at = self.frame["at"].to_numpy(dtype="datetime64[us]")
        self.kind = self.frame["kind"].to_numpy(dtype=object)
        self.text = self.frame["text"].to_numpy(dtype=object)
        self.amount = self.frame["amount"].to_numpy(dtype=float)

    def of(self, account_id: str, limit: int = MAX_ROWS) -> list[dict[str, Any]]:
        """The account's events, newest first (at most ``limit``)."""
        lo = int(np.searchsorted(self.accounts, account_id, "left"))
        hi = min(int(np.searchsorted(self.accounts, account_id, "right")), lo + limit)
        return [{"at": pd.Timestamp(a), "kind": k, "text": t, "amount": None if m != m else float(m)}
                for a, k, t, m in zip(self.at[lo:hi], self.kind[lo:hi], self.text[lo:hi], self.amount[lo:hi],
                                      strict=True)]


def company_events(company: CompanyData, as_of: dt.date, months: int = 12) -> CompanyEvents:
    """Every account's events of the ``months`` before ``as_of`` (kept per snapshot date and folder state)."""

    def load() -> CompanyEvents:
        parts = [sql for table, sql in _PARTS.items() if company.has(table)
                 and (table != "opportunity_stages" or company.has("opportunities"))]
        columns = ["account_id", "at", "kind", "text", "amount"]
        if not parts:
            return CompanyEvents(pd.DataFrame(columns=columns))
        sql = ("SELECT CAST(account_id AS VARCHAR) AS account_id, CAST(happened AS TIMESTAMP) AS happened, kind, text, CAST(amount AS DOUBLE) AS amount FROM ("
               + " UNION ALL ".join(f"({p})" for p in parts) + ") ORDER BY account_id, happened DESC")
        start = pd.Timestamp(_months_back(as_of, months))
        frame = company.query(sql, [start, pd.Timestamp(as_of) + pd.Timedelta(days=1)])
        # binary search needs the byte order numpy uses, not the database's collation
        frame = frame.rename(columns={"happened": "at"}).assign(account_id=frame["account_id"].astype(str))
        frame = frame.sort_values(["account_id", "at"], ascending=[True, False], kind="stable")
        return CompanyEvents(frame[columns])

    return company.cached(f"timeline{months}", as_of, load)


def account_timeline(raw: list[dict[str, Any]], plays: list[dict[str, Any]], history: pd.DataFrame,
                     limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """One dated list, newest first: the raw events, the plays logged (with their outcome) and the score moves."""
    rows = list(raw)
    for p in plays:
        who = p.get("logged_by") or "someone"
        note = f": {p['note']}" if p.get("note") else ""
        rows.append({"at": _naive(p["logged_at"]), "kind": "play", "amount": None,
                     "text": f"{_label(p['play'])} logged by {who}, {_label(p['outcome'])}{note}"})
    if len(history) >= 2:
        h = history.reset_index(drop=True)
        for i in range(1, len(h)):
            before, after = h.iloc[i - 1], h.iloc[i]
            move = float(after["readiness_score"]) - float(before["readiness_score"])
            churn = 100 * (float(after["churn_probability"]) - float(before["churn_probability"])) \
                if pd.notna(after["churn_probability"]) and pd.notna(before["churn_probability"]) else None
            if abs(move) >= 1 or (churn is not None and abs(churn) >= 1):
                text = f"Readiness {move:+.0f} points to {float(after['readiness_score']):.0f}"
                if churn is not None:
                    text += f", churn risk {churn:+.0f} pts"
                rows.append({"at": pd.Timestamp(after["as_of"]), "kind": "score", "text": text, "amount": None})
    rows.sort(key=lambda r: r["at"], reverse=True)
    return [{**r, "label": KINDS[r["kind"]]} for r in rows[:limit]]


def _naive(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


def _label(value: Any) -> str:
    return str(value).replace("_", " ")
