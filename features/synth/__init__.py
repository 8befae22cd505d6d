"""A synthetic B2B SaaS company that meets the data contract: ``generate(out_dir, accounts, months, seed, as_of)``.

Accounts are simulated in fixed blocks of ``BLOCK_ACCOUNTS``, each with random streams
derived from (seed, block), so the same seed gives the same files whatever the chunk
size, and memory stays flat however many accounts are asked for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.synth import accounts, catalog, engagement, lifecycle, messy, opportunities, subscriptions, usage
from features.synth.messy import STREAM_MESSY, MessyConfig
from features.synth.plays import PLAY_TABLE, STREAM_PLAYS, PlayEffects, PlayPolicy
from features.synth.timeline import (
    BLOCK_ACCOUNTS,
    STREAM_ACCOUNTS,
    STREAM_ENGAGEMENT,
    STREAM_LIFECYCLE,
    STREAM_OPPORTUNITIES,
    STREAM_USAGE,
    Timeline,
    block_rng,
)
from features.synth.writer import TableWriters

__all__ = ["generate", "BLOCK_ACCOUNTS", "MessyConfig", "PlayEffects"]

OPPORTUNITY_IDS_PER_BLOCK = 10_000_000


def _block_tables(seed: int, block: int, n: int, timeline: Timeline, mess: MessyConfig | None = None,
                  plays: PlayEffects | None = None) -> dict:
    """Every table's rows for one block of accounts (reshaped by the messy mode when ``mess`` is given)."""
    b = accounts.draw_accounts(block_rng(seed, block, STREAM_ACCOUNTS), n, block * BLOCK_ACCOUNTS, timeline)
    messy_rng = block_rng(seed, block, STREAM_MESSY)
    ids = messy.reshape_accounts(b, timeline, messy_rng, mess) if mess else None
    reactivation = mess.reactivation_monthly if mess else lifecycle.REACTIVATION_MONTHLY
    policy = None if plays is None else PlayPolicy(plays, b.account_id, timeline.anniversary_dates(b.day),
                                                   timeline.first_window_month, block_rng(seed, block, STREAM_PLAYS))
    h = lifecycle.simulate(b, timeline, block_rng(seed, block, STREAM_LIFECYCLE), reactivation, policy)
    rng = block_rng(seed, block, STREAM_ENGAGEMENT)
    months = engagement.active_months(b, h, timeline)
    opps, stages = opportunities.opportunity_tables(
        b, h, timeline, block_rng(seed, block, STREAM_OPPORTUNITIES), first_id=block * OPPORTUNITY_IDS_PER_BLOCK
    )
    tables = {
        "accounts": accounts.accounts_table(b, timeline),
        "subscriptions": subscriptions.subscriptions_table(b, h, timeline),
        "usage_daily": usage.usage_table(b, h, timeline, block_rng(seed, block, STREAM_USAGE)),
        "support_tickets": engagement.tickets_table(b, months, timeline, rng),
        "surveys": engagement.surveys_table(b, months, rng),
        "activities": engagement.activities_table(b, h, months, rng),
        "payments": engagement.payments_table(b, h, months, timeline, rng),
        "opportunities": opps,
        "opportunity_stages": stages,
    }
    if policy is not None:
        tables[PLAY_TABLE] = policy.table()
    if mess is None:
        return tables
    return messy.mess_block(tables, ids, b, timeline, messy_rng, mess, messy.outage_days(seed, timeline, mess))


def generate(
    out_dir: str | Path,
    accounts: int = 2000,
    months: int = 24,
    seed: int = 7,
    as_of: dt.date | None = None,
    on_block: Callable[[int, int], None] | None = None,
    mess: MessyConfig | None = None,
    plays: PlayEffects | None = None,
) -> dict[str, int]:
    """Write every contract table as ``<table>.parquet`` under ``out_dir``; return rows per table.

    ``accounts`` counts the accounts that exist at some time in the ``months``-month
    window ending at ``as_of`` (required: library code never reads the clock).
    ``on_block(done, total)`` is called after each block, for progress display. ``mess`` makes
    the company messy as real exports are (``features.synth.messy``); optional tables it names
    as missing are not written at all. ``plays`` gives plays known effects and writes who was assigned
    and treated to ``play_assignments.parquet`` (``features.synth.plays``; not with ``mess``).
    """
    if plays is not None and mess is not None:
        raise ValueError("generate: plays and mess cannot be combined")
    if as_of is None:
        raise ValueError("generate: as_of is required (the window ends there)")
    if accounts < 1:
        raise ValueError(f"generate: accounts must be >= 1, got {accounts}")
    timeline = Timeline(as_of=as_of, months=months)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers = TableWriters(out)
    episodes: list[pd.DataFrame] = []
    writers.write("products", catalog.products_table())
    writers.write("plan_features", catalog.plan_features_table())
    blocks = -(-accounts // BLOCK_ACCOUNTS)
    try:
        for block in range(blocks):
            n = min(BLOCK_ACCOUNTS, accounts - block * BLOCK_ACCOUNTS)
            for name, table in _block_tables(seed, block, n, timeline, mess, plays).items():
                if name == PLAY_TABLE:
                    episodes.append(table)
                else:
                    writers.write(name, table)
            if mess is not None and block == blocks - 1 and (orphans := messy.orphan_deals(mess, timeline)) is not None:
                writers.write("opportunities", orphans)
            if on_block is not None:
                on_block(block + 1, blocks)
    finally:
        rows = writers.close()
    if plays is not None:
        frame = pd.concat(episodes, ignore_index=True)
        frame.to_parquet(out / f"{PLAY_TABLE}.parquet", index=False)
        rows[PLAY_TABLE] = len(frame)
    if mess is not None:
        rows = messy.drop_tables(out, rows, mess)
    return rows
