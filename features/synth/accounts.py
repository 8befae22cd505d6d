"""Static account attributes: segment, industry, channel, size, start date and latent propensities.

Structural effects live here as logit shifts, each one a published pattern: software,
healthcare and professional services expand more; retail, education and nonprofit
less; partner-sourced accounts expand less; enterprise expands more and churns less.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.synth.timeline import Timeline

SEGMENTS = ("smb", "mid_market", "enterprise")
SEGMENT_SHARE = (0.55, 0.32, 0.13)
# (name, share, expansion logit shift, churn logit shift)
INDUSTRIES = (
    ("software", 0.16, 0.35, -0.10),
    ("healthcare", 0.10, 0.25, -0.05),
    ("professional services", 0.12, 0.25, 0.0),
    ("financial services", 0.10, 0.10, -0.05),
    ("media", 0.07, 0.0, 0.05),
    ("logistics", 0.07, 0.0, 0.0),
    ("manufacturing", 0.12, -0.15, 0.0),
    ("retail", 0.11, -0.30, 0.20),
    ("education", 0.08, -0.35, 0.10),
    ("nonprofit", 0.07, -0.45, 0.15),
)
CHANNELS = ("direct", "partner", "self_serve")
CHANNEL_SHARE = ((0.35, 0.20, 0.45), (0.65, 0.30, 0.05), (0.75, 0.25, 0.0))
CHANNEL_EXPANSION = (0.0, -0.6, -0.1)
CHANNEL_CHURN = (0.0, 0.1, 0.25)
SEGMENT_EXPANSION = (0.0, 0.15, 0.35)
REGIONS = ("North America", "EMEA", "APAC", "LATAM")
REGION_SHARE = (0.45, 0.30, 0.15, 0.10)
SEATS_MEDIAN, SEATS_SIGMA, SEATS_RANGE = (8, 45, 250), (0.6, 0.5, 0.5), ((2, 60), (15, 300), (80, 2500))
ANNUAL_CONTRACT_SHARE = (0.35, 0.85, 1.0)
CORE_TIER_SHARE = ((0.65, 0.30, 0.05), (0.25, 0.55, 0.20), (0.05, 0.40, 0.55))
ADDON_SHARE = (0.04, 0.12, 0.25)
VOLUME_DISCOUNT = (1.0, 0.9, 0.75)
_NAME_A = ("Blue", "North", "Bright", "Iron", "Silver", "Rapid", "Green", "Summit", "Clear", "Nova", "Peak", "Harbor")
_NAME_B = ("Labs", "Systems", "Works", "Health", "Logic", "Foods", "Partners", "Media", "Freight", "Learning", "Goods")
_NAME_C = ("Inc", "LLC", "GmbH", "Ltd", "Group", "Co")


@dataclass
class AccountBlock:
    """Attributes of one block of accounts; arrays of length n, months as simulated-month indices."""

    account_id: np.ndarray
    segment: np.ndarray
    industry: np.ndarray
    channel: np.ndarray
    region: np.ndarray
    employees: np.ndarray
    start_month: np.ndarray
    day: np.ndarray
    annual_contract: np.ndarray
    annual_billing: np.ndarray
    seats: np.ndarray
    core_tier: np.ndarray
    addon_tier: np.ndarray  # [n, addons], -1 = not owned
    price_factor: np.ndarray
    momentum_mean: np.ndarray
    health_mean: np.ndarray
    api_affinity: np.ndarray
    intensity: np.ndarray
    name: list[str]
    csm_owner: list[str | None]
    fiscal_year_start_month: list[int | None]

    @property
    def n(self) -> int:
        return len(self.segment)

    def expansion_shift(self) -> np.ndarray:
        """Structural expansion logit shift from segment, industry and channel."""
        ind = np.array([i[2] for i in INDUSTRIES])[self.industry]
        return np.array(SEGMENT_EXPANSION)[self.segment] + ind + np.array(CHANNEL_EXPANSION)[self.channel]

    def churn_shift(self) -> np.ndarray:
        """Structural churn logit shift from industry and channel (segment enters the base rate)."""
        return np.array([i[3] for i in INDUSTRIES])[self.industry] + np.array(CHANNEL_CHURN)[self.channel]


def _start_months(rng: np.random.Generator, n: int, timeline: Timeline) -> np.ndarray:
    """Month each account started: about 55 % before a 24-month window, the rest spread over it."""
    share_new = timeline.months / (timeline.months + 30)
    is_new = rng.random(n) < share_new
    before = timeline.pre_months - 1 - np.floor(rng.exponential(20.0, n)).astype(np.int64)
    growth = 1.02 ** np.arange(timeline.months)
    within = timeline.pre_months + rng.choice(timeline.months, n, p=growth / growth.sum())
    return np.where(is_new, within, np.clip(before, 0, None))


def draw_accounts(rng: np.random.Generator, n: int, first_index: int, timeline: Timeline) -> AccountBlock:
    """Draw ``n`` accounts whose global indices start at ``first_index``."""
    seg = rng.choice(3, n, p=SEGMENT_SHARE)
    shares = np.array([i[1] for i in INDUSTRIES])
    industry = rng.choice(len(INDUSTRIES), n, p=shares / shares.sum())
    u = rng.random(n)
    channel = (u[:, None] > np.cumsum(np.array(CHANNEL_SHARE)[seg], axis=1)).sum(axis=1)
    lo, hi = np.array(SEATS_RANGE)[seg].T
    seats = np.clip(np.round(np.array(SEATS_MEDIAN)[seg] * np.exp(rng.normal(0, 1, n) * np.array(SEATS_SIGMA)[seg])), lo, hi)
    start = _start_months(rng, n, timeline)
    day = rng.integers(1, 29, n)
    last = start == timeline.total_months - 1
    day = np.where(last, np.minimum(day, timeline.as_of.day), day)
    core_tier = (rng.random(n)[:, None] > np.cumsum(np.array(CORE_TIER_SHARE)[seg], axis=1)).sum(axis=1)
    owns = rng.random((n, 3)) < np.array(ADDON_SHARE)[seg][:, None]
    addon_tier = np.where(owns, np.minimum(core_tier[:, None], rng.integers(0, 3, (n, 3))), -1)
    annual = rng.random(n) < np.array(ANNUAL_CONTRACT_SHARE)[seg]
    fiscal = rng.choice(np.array([1, 4, 7, 10, 0]), n, p=[0.6, 0.15, 0.15, 0.05, 0.05])
    owner = rng.integers(0, 120, n)
    pooled = (seg == 0) & (rng.random(n) < 0.7)
    names = rng.integers(0, [len(_NAME_A), len(_NAME_B), len(_NAME_C)], (n, 3))
    ids = first_index + np.arange(n)
    return AccountBlock(
        account_id=np.array([f"ACC-{i:06d}" for i in ids]),
        segment=seg,
        industry=industry,
        channel=channel,
        region=rng.choice(len(REGIONS), n, p=REGION_SHARE),
        employees=np.round(seats * np.exp(rng.normal(np.log(4), 0.5, n))).astype(np.int64) + 1,
        start_month=start,
        day=day,
        annual_contract=annual,
        annual_billing=annual & (rng.random(n) < 0.7),
        seats=seats.astype(np.int64),
        core_tier=core_tier,
        addon_tier=addon_tier,
        price_factor=np.array(VOLUME_DISCOUNT)[seg] * rng.uniform(0.9, 1.05, n),
        momentum_mean=rng.normal(0, 0.6, n) + 0.5 * np.array(SEGMENT_EXPANSION)[seg],
        health_mean=rng.normal(0, 0.5, n) - 0.5 * np.array(CHANNEL_CHURN)[channel],
        api_affinity=rng.normal(0, 1, n),
        intensity=np.exp(rng.normal(0, 0.3, n)),
        name=[f"{_NAME_A[a]} {_NAME_B[b]} {_NAME_C[c]}" for a, b, c in names],
        csm_owner=[None if p else f"csm-{o:03d}" for o, p in zip(owner, pooled)],
        fiscal_year_start_month=[int(f) if f else None for f in fiscal],
    )


def accounts_table(block: AccountBlock, timeline: Timeline) -> pa.Table:
    """The ``accounts`` rows of a block (``customer_since`` = the first contract's start day)."""
    since = timeline.anniversary_dates(block.day)[np.arange(block.n), block.start_month]
    return pa.table(
        {
            "account_id": pa.array(block.account_id, pa.string()),
            "name": pa.array(block.name, pa.string()),
            "segment": pa.array(np.array(SEGMENTS)[block.segment], pa.string()),
            "industry": pa.array(np.array([i[0] for i in INDUSTRIES])[block.industry], pa.string()),
            "region": pa.array(np.array(REGIONS)[block.region], pa.string()),
            "employees": pa.array(block.employees, pa.int64()),
            "acquisition_channel": pa.array(np.array(CHANNELS)[block.channel], pa.string()),
            "customer_since": pa.array(since, pa.date32()),
            "csm_owner": pa.array(block.csm_owner, pa.string()),
            "fiscal_year_start_month": pa.array(block.fiscal_year_start_month, pa.int64()),
        }
    )
