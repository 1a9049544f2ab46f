"""Settlement tables: rules (one row per version, never updated), runs and their statement lines.

A rule version is in force from its `effective_from` (a local date) until the next
version's; a run copies the figures it used, so a statement never changes when a
rule does. A confirmed run has no update path in the service: a correction is a
new adjustment run.
"""

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Date, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime

CYCLES = ("daily", "weekly", "monthly")
RUN_STATUSES = ("draft", "confirmed")


class SettlementCounterparty(Base):
    """One agent or channel that is settled: the row a confirmation locks, so two confirmations queue."""

    __tablename__ = "settlement_counterparties"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(80), unique=True)  # "agent:A001", "marketplace:tmall"
    created_at = mapped_column(UTCDateTime(), nullable=False)


class SettlementRule(Base):
    __tablename__ = "settlement_rules"
    __table_args__ = (
        UniqueConstraint("counterparty_id", "effective_from"),
        CheckConstraint("fee_rate_bp >= 0 AND fee_rate_bp <= 10000", name="fee_rate_valid"),
        CheckConstraint("minimum_payout_minor >= 0", name="minimum_payout_not_negative"),
        CheckConstraint("hold_days >= 0", name="hold_days_not_negative"),
        CheckConstraint(f"cycle IN ({', '.join(repr(c) for c in CYCLES)})", name="cycle_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    counterparty_id: Mapped[int] = mapped_column(Integer)
    effective_from = mapped_column(Date(), nullable=False)
    currency: Mapped[str] = mapped_column(String(3))
    fee_rate_bp: Mapped[int] = mapped_column(Integer)
    # [[threshold_minor, rate_bp], ...], thresholds strictly ascending: the highest reached applies.
    tiers: Mapped[list[Any]] = mapped_column(JSON)
    cycle: Mapped[str] = mapped_column(String(8))
    minimum_payout_minor: Mapped[int] = mapped_column(BigInteger)
    hold_days: Mapped[int] = mapped_column(Integer)
    time_zone: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(UTCDateTime(), nullable=False)


class SettlementRun(Base):
    __tablename__ = "settlement_runs"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in RUN_STATUSES)})", name="status_known"),
        CheckConstraint("period_end > period_start", name="period_not_empty"),
        Index("ix_settlement_runs_counterparty", "counterparty_id", "period_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    counterparty_id: Mapped[int] = mapped_column(Integer)
    counterparty: Mapped[str] = mapped_column(String(80))
    rule_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))
    currency: Mapped[str] = mapped_column(String(3))
    # The period as local dates [first_day, last_day] and as UTC instants [start, end).
    first_day = mapped_column(Date(), nullable=False)
    last_day = mapped_column(Date(), nullable=False)
    period_start = mapped_column(UTCDateTime(), nullable=False)
    period_end = mapped_column(UTCDateTime(), nullable=False)
    # Sales from settled_from up to cutoff (period end minus the hold) are settled by this run.
    settled_from = mapped_column(UTCDateTime(), nullable=False)
    cutoff = mapped_column(UTCDateTime(), nullable=False)
    # The statement: every figure in minor units, as it moves the counterparty's balance.
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(UTCDateTime(), nullable=False)
    confirmed_by: Mapped[str | None] = mapped_column(String(128))
    confirmed_at = mapped_column(UTCDateTime(), nullable=True)
    # A store's payout booked from its settlement export before the run was confirmed (ledger kind `payout`):
    # the run adopted it instead of posting `settlement:<id>:payout`, so the payout is on the ledger once.
    payout_reference: Mapped[str | None] = mapped_column(String(128), unique=True)


class SettlementLine(Base):
    """One ledger movement of the statement's account in the period: an order, a refund, a top-up…"""

    __tablename__ = "settlement_lines"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger, index=True)
    at = mapped_column(UTCDateTime(), nullable=False)
    kind: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(128))
    order_no: Mapped[str | None] = mapped_column(String(32))
    gross_minor: Mapped[int] = mapped_column(BigInteger)  # the sale or refund amount; 0 for other kinds
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # how it moved the balance
    in_period: Mapped[bool] = mapped_column(Boolean)  # else an earlier period's sale held back until this run
    settled: Mapped[bool] = mapped_column(Boolean)  # within this run's settled window (else held back)
