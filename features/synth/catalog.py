"""The synthetic company's catalog: products, plans, prices, quotas and the features each plan unlocks.

A core platform sold in three tiers plus add-on modules, each in three tiers with
2-3x price steps per seat. Only the core platform is metered: its plans carry a
monthly event quota per licensed seat (the top tier is unlimited), so a
subscription's ``usage_limit`` is the quota per seat times its seats.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Product:
    """One product: its plans (entry tier first), prices, quota per seat and unlocked features per plan."""

    product_id: str
    plans: tuple[str, str, str]
    price_per_seat: tuple[float, float, float]
    quota_per_seat: tuple[float | None, float | None, float | None]
    features: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # features first unlocked at each tier


CORE = Product(
    "core",
    ("starter", "growth", "enterprise"),
    (12.0, 30.0, 75.0),
    (600.0, 2500.0, None),
    (
        ("dashboards", "projects", "comments", "reports"),
        ("workflows", "sso", "api_calls"),
        ("audit_log", "custom_roles", "api_bulk_export"),
    ),
)
ADDONS = (
    Product(
        "analytics",
        ("analytics_basic", "analytics_pro", "analytics_enterprise"),
        (6.0, 15.0, 36.0),
        (None, None, None),
        (("analytics_dashboards",), ("analytics_forecasts",), ("analytics_api",)),
    ),
    Product(
        "automation",
        ("automation_basic", "automation_pro", "automation_enterprise"),
        (8.0, 20.0, 48.0),
        (None, None, None),
        (("automation_rules",), ("automation_schedules",), ("automation_api",)),
    ),
    Product(
        "security",
        ("security_basic", "security_pro", "security_enterprise"),
        (5.0, 12.0, 30.0),
        (None, None, None),
        (("security_alerts",), ("security_policies",), ("security_api",)),
    ),
)
PRODUCTS = (CORE, *ADDONS)


def unlocked_features(product: Product, tier: int) -> tuple[str, ...]:
    """Every feature key a plan of ``product`` at ``tier`` (0-based) unlocks: its own and the lower tiers'."""
    return tuple(f for t in range(tier + 1) for f in product.features[t])


def feature_index() -> list[tuple[int, int, str]]:
    """(product index, tier that unlocks it, feature_key) for every feature, in a fixed order."""
    return [(p, t, f) for p, prod in enumerate(PRODUCTS) for t, feats in enumerate(prod.features) for f in feats]


def products_table() -> pa.Table:
    """The ``products`` table: one row per product and plan."""
    rows = [
        (p.product_id, p.plans[t], t + 1, p.price_per_seat[t], p.quota_per_seat[t])
        for p in PRODUCTS
        for t in range(3)
    ]
    cols = list(zip(*rows))
    return pa.table(
        {
            "product_id": pa.array(cols[0], pa.string()),
            "plan": pa.array(cols[1], pa.string()),
            "tier_rank": pa.array(cols[2], pa.int64()),
            "list_price_per_seat": pa.array(cols[3], pa.float64()),
            "usage_limit": pa.array(cols[4], pa.float64()),
        }
    )


def plan_features_table() -> pa.Table:
    """The ``plan_features`` table: one row per plan and feature key it unlocks."""
    rows = [(p.product_id, p.plans[t], f) for p in PRODUCTS for t in range(3) for f in unlocked_features(p, t)]
    cols = list(zip(*rows))
    return pa.table({name: pa.array(col, pa.string()) for name, col in zip(("product_id", "plan", "feature_key"), cols)})
