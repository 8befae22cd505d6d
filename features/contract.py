"""The input data contract: canonical tables, declared once.

Every other part of the product (the loader's checks, ``docs/data-contract.md``, the
generator, the features) reads this declaration. Checks compile to SQL and run inside
DuckDB, so a table larger than memory is validated without being copied into pandas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DType = Literal["string", "int", "float", "date", "timestamp", "bool"]

SEGMENTS = ("smb", "mid_market", "enterprise")
CHANNELS = ("direct", "partner", "self_serve")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_CATEGORIES = ("bug", "how_to", "feature_request", "billing", "outage")
SURVEY_KINDS = ("nps", "csat")
RESPONDENT_ROLES = ("executive", "admin", "user")
ACTIVITY_KINDS = ("meeting", "qbr", "email", "call", "training")
PAYMENT_STATUSES = ("paid", "late", "failed")
EXPANSION_KINDS = ("expansion", "cross_sell", "upsell")  # opportunity kinds that add ARR to an existing account
OPPORTUNITY_KINDS = (*EXPANSION_KINDS, "renewal", "new_business")
OPPORTUNITY_OUTCOMES = ("open", "won", "lost")


@dataclass(frozen=True)
class Column:
    """One column: its type, whether it may be null, and its allowed values or range."""

    name: str
    dtype: DType
    description: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Table:
    """One canonical table: grain, columns, key and the timestamps that must not lie after as-of."""

    name: str
    grain: str
    required: bool
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    event_time: tuple[str, ...] = ()
    references_accounts: bool = True

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class RowRule:
    """A rule over several columns of one row, written as the SQL condition a bad row meets."""

    table: str
    columns: tuple[str, ...]
    rule: str
    bad_row_sql: str
    extra_tables: tuple[str, ...] = field(default_factory=tuple)


ACCOUNTS = Table(
    "accounts",
    "one row per customer account",
    True,
    (
        Column("account_id", "string", "Stable identifier of the customer account."),
        Column("name", "string", "Display name."),
        Column("segment", "string", "Market segment.", allowed=SEGMENTS),
        Column("industry", "string", "Industry, in the company's own words."),
        Column("region", "string", "Sales region, in the company's own words."),
        Column("employees", "int", "Headcount of the customer.", min=0),
        Column("acquisition_channel", "string", "How the account was won.", allowed=CHANNELS),
        Column("customer_since", "date", "Date of the first contract."),
        Column("csm_owner", "string", "Customer success manager who owns the account.", nullable=True),
        Column("fiscal_year_start_month", "int", "Month (1-12) the customer's fiscal year starts.", True, min=1, max=12),
    ),
    key=("account_id",),
    references_accounts=False,
)

SUBSCRIPTIONS = Table(
    "subscriptions",
    "one row per period in which an account's subscription to one product is constant (type-2 history)",
    True,
    (
        Column("account_id", "string", "Account holding the subscription."),
        Column("product_id", "string", "Product subscribed to."),
        Column("plan", "string", "Plan (tier) of the product."),
        Column("seats", "int", "Licensed seats.", min=0),
        Column("mrr", "float", "Monthly recurring revenue of this subscription in the period.", min=0),
        Column("usage_limit", "float", "Monthly event quota of the plan; null = unlimited.", nullable=True, min=0),
        Column("valid_from", "date", "First day of the period (inclusive)."),
        Column("valid_to", "date", "End of the period (exclusive); null = current.", nullable=True),
        Column("renewal_date", "date", "Next contract renewal date.", nullable=True),
    ),
    key=("account_id", "product_id", "valid_from"),
    event_time=("valid_from",),
)

PRODUCTS = Table(
    "products",
    "catalog: one row per product and plan",
    False,
    (
        Column("product_id", "string", "Product identifier."),
        Column("plan", "string", "Plan name."),
        Column("tier_rank", "int", "Rank of the plan within its product (1 = entry tier).", min=1),
        Column("list_price_per_seat", "float", "Monthly list price of one seat.", min=0),
        Column("usage_limit", "float", "Monthly event quota per seat on this plan; null = unlimited (a "
               "subscription's usage_limit holds the quota in force).", nullable=True, min=0),
    ),
    key=("product_id", "plan"),
    references_accounts=False,
)

PLAN_FEATURES = Table(
    "plan_features",
    "catalog: which feature keys each plan unlocks",
    False,
    (
        Column("product_id", "string", "Product identifier."),
        Column("plan", "string", "Plan name."),
        Column("feature_key", "string", "Feature unlocked by the plan."),
    ),
    key=("product_id", "plan", "feature_key"),
    references_accounts=False,
)

USAGE_DAILY = Table(
    "usage_daily",
    "one row per account, day and feature",
    True,
    (
        Column("account_id", "string", "Account."),
        Column("date", "date", "Day of use."),
        Column("feature_key", "string", "Feature used."),
        Column("events", "int", "Events recorded on the feature that day.", min=0),
        Column("active_users", "int", "Distinct users active on the feature that day.", min=0),
    ),
    key=("account_id", "date", "feature_key"),
    event_time=("date",),
)

SUPPORT_TICKETS = Table(
    "support_tickets",
    "one row per ticket",
    False,
    (
        Column("ticket_id", "string", "Ticket identifier."),
        Column("account_id", "string", "Account that opened the ticket."),
        Column("created_at", "timestamp", "When the ticket was opened."),
        Column("priority", "string", "Priority.", allowed=TICKET_PRIORITIES),
        Column("category", "string", "Category.", allowed=TICKET_CATEGORIES),
        Column("resolved_at", "timestamp", "When it was resolved; null = open.", nullable=True),
        Column("csat", "float", "Satisfaction rating of the resolution (1-5).", nullable=True, min=1, max=5),
    ),
    key=("ticket_id",),
    event_time=("created_at",),
)

SURVEYS = Table(
    "surveys",
    "one row per survey response",
    False,
    (
        Column("account_id", "string", "Account of the respondent."),
        Column("responded_at", "timestamp", "When the response was given."),
        Column("kind", "string", "Survey kind.", allowed=SURVEY_KINDS),
        Column("score", "float", "NPS 0-10 or CSAT 1-5.", min=0, max=10),
        Column("respondent_role", "string", "Role of the respondent.", allowed=RESPONDENT_ROLES),
    ),
    event_time=("responded_at",),
)

ACTIVITIES = Table(
    "activities",
    "CRM engagement log: one row per touch",
    False,
    (
        Column("account_id", "string", "Account touched."),
        Column("occurred_at", "timestamp", "When the touch happened."),
        Column("kind", "string", "Kind of touch.", allowed=ACTIVITY_KINDS),
        Column("with_executive", "bool", "Whether a customer executive took part."),
    ),
    event_time=("occurred_at",),
)

PAYMENTS = Table(
    "payments",
    "one row per invoice",
    False,
    (
        Column("invoice_id", "string", "Invoice identifier."),
        Column("account_id", "string", "Account invoiced."),
        Column("due_date", "date", "Payment due date."),
        Column("amount", "float", "Invoiced amount.", min=0),
        Column("paid_at", "timestamp", "When it was paid; null = unpaid.", nullable=True),
        Column("status", "string", "Payment outcome.", allowed=PAYMENT_STATUSES),
    ),
    key=("invoice_id",),
    event_time=("due_date",),
)

OPPORTUNITIES = Table(
    "opportunities",
    "one row per sales opportunity (deal) on an existing or new account",
    False,
    (
        Column("opportunity_id", "string", "Opportunity identifier."),
        Column("account_id", "string", "Account the opportunity is for."),
        Column("kind", "string", "What the deal would do to the account's ARR.", allowed=OPPORTUNITY_KINDS),
        Column("amount", "float", "ARR change the deal brings if won (renewals: the ARR renewed).", min=0),
        Column("created_at", "timestamp", "When the opportunity was opened."),
        Column("expected_close_date", "date", "Date the owner expects it to close; may lie in the future.",
               nullable=True),
        Column("closed_at", "timestamp", "When it was won or lost; null = still open.", nullable=True),
        Column("outcome", "string", "Open, won or lost.", allowed=OPPORTUNITY_OUTCOMES),
        Column("owner", "string", "Seller or CSM who owns the deal.", nullable=True),
    ),
    key=("opportunity_id",),
    event_time=("created_at", "closed_at"),
)

OPPORTUNITY_STAGES = Table(
    "opportunity_stages",
    "one row per stage an opportunity entered (its stage history)",
    False,
    (
        Column("opportunity_id", "string", "Opportunity whose stage changed."),
        Column("stage", "string", "Stage entered, in the company's own words; ordered by a setting."),
        Column("entered_at", "timestamp", "When the opportunity entered the stage."),
    ),
    key=("opportunity_id", "stage", "entered_at"),
    event_time=("entered_at",),
    references_accounts=False,
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        ACCOUNTS,
        SUBSCRIPTIONS,
        PRODUCTS,
        PLAN_FEATURES,
        USAGE_DAILY,
        SUPPORT_TICKETS,
        SURVEYS,
        ACTIVITIES,
        PAYMENTS,
        OPPORTUNITIES,
        OPPORTUNITY_STAGES,
    )
}
REQUIRED_TABLES = tuple(n for n, t in TABLES.items() if t.required)

ROW_RULES: tuple[RowRule, ...] = (
    RowRule("subscriptions", ("valid_from", "valid_to"), "valid_to must be after valid_from",
            "valid_to IS NOT NULL AND valid_to <= valid_from"),
    RowRule("surveys", ("kind", "score"), "a csat score lies in 1-5",
            "kind = 'csat' AND (score < 1 OR score > 5)"),
    RowRule("support_tickets", ("created_at", "resolved_at"), "resolved_at must not precede created_at",
            "resolved_at IS NOT NULL AND resolved_at < created_at"),
    RowRule("payments", ("status", "paid_at"), "a paid or late invoice has paid_at",
            "status IN ('paid', 'late') AND paid_at IS NULL"),
    RowRule("opportunities", ("outcome", "closed_at"), "a won or lost opportunity has closed_at, an open one has not",
            "(outcome = 'open') <> (closed_at IS NULL)"),
    RowRule("opportunities", ("created_at", "closed_at"), "closed_at must not precede created_at",
            "closed_at IS NOT NULL AND closed_at < created_at"),
)
