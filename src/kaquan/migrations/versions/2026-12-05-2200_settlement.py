"""settlement: counterparties, rule versions, runs and their statement lines

Revision ID: b7c2e9a4d201
Revises: c5a0b7d2e401
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7c2e9a4d201"
down_revision: str | None = "c5a0b7d2e401"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "settlement_counterparties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_counterparties")),
        sa.UniqueConstraint("code", name=op.f("uq_settlement_counterparties_code")),
    )
    op.create_table(
        "settlement_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("counterparty_id", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee_rate_bp", sa.Integer(), nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("cycle", sa.String(length=8), nullable=False),
        sa.Column("minimum_payout_minor", sa.BigInteger(), nullable=False),
        sa.Column("hold_days", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "fee_rate_bp >= 0 AND fee_rate_bp <= 10000", name=op.f("ck_settlement_rules_fee_rate_valid")
        ),
        sa.CheckConstraint("minimum_payout_minor >= 0", name=op.f("ck_settlement_rules_minimum_payout_not_negative")),
        sa.CheckConstraint("hold_days >= 0", name=op.f("ck_settlement_rules_hold_days_not_negative")),
        sa.CheckConstraint("cycle IN ('daily', 'weekly', 'monthly')", name=op.f("ck_settlement_rules_cycle_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_rules")),
        sa.UniqueConstraint(
            "counterparty_id", "effective_from", name=op.f("uq_settlement_rules_counterparty_id_effective_from")
        ),
    )
    op.create_table(
        "settlement_runs",
        sa.Column("id", big_id, nullable=False),
        sa.Column("counterparty_id", sa.Integer(), nullable=False),
        sa.Column("counterparty", sa.String(length=80), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_by", sa.String(length=128), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'confirmed')", name=op.f("ck_settlement_runs_status_known")),
        sa.CheckConstraint("period_end > period_start", name=op.f("ck_settlement_runs_period_not_empty")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_runs")),
    )
    with op.batch_alter_table("settlement_runs", schema=None) as batch_op:
        batch_op.create_index("ix_settlement_runs_counterparty", ["counterparty_id", "period_start"], unique=False)
    op.create_table(
        "settlement_lines",
        sa.Column("id", big_id, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("order_no", sa.String(length=32), nullable=True),
        sa.Column("gross_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("in_period", sa.Boolean(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_lines")),
    )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlement_lines_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_lines_run_id"))
    op.drop_table("settlement_lines")
    with op.batch_alter_table("settlement_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_runs_counterparty")
    op.drop_table("settlement_runs")
    op.drop_table("settlement_rules")
    op.drop_table("settlement_counterparties")
