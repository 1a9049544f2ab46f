"""payments: provider trades (method, action, payer, fee, refunded amount) and refunds as their own records

Revision ID: a1d3e7f0c105
Revises: a1d3e7f0c103
Create Date: 2026-12-05

A payment that was `refund_pending` becomes `succeeded` with a requested
refund of its whole amount; a `refunded` one gets its succeeded refund record.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c105"
down_revision: str | None = "a1d3e7f0c103"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "payment_refunds",
        sa.Column("id", big_id, nullable=False),
        sa.Column("refund_no", sa.String(length=40), nullable=False),
        sa.Column("payment_id", big_id, nullable=False),
        sa.Column("order_id", big_id, nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee_back_minor", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_ref", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("void_codes", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payment_refunds_amount_positive")),
        sa.CheckConstraint("fee_back_minor >= 0", name=op.f("ck_payment_refunds_fee_back_not_negative")),
        sa.CheckConstraint(
            "status IN ('awaiting_approval', 'requested', 'processing', 'succeeded', 'failed', 'rejected')",
            name=op.f("ck_payment_refunds_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_refunds")),
        sa.UniqueConstraint("refund_no", name=op.f("uq_payment_refunds_refund_no")),
    )
    with op.batch_alter_table("payment_refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_refunds_payment_id"), ["payment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_refunds_order_id"), ["order_id"], unique=False)

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("method", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("provider_ref", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("action", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("payer", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("fee_minor", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("refunded_minor", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(op.f("ck_payments_status_known"), type_="check")

    op.execute(
        "INSERT INTO payment_refunds (refund_no, payment_id, order_id, amount_minor, currency, fee_back_minor,"
        " reason, status, attempts, provider_ref, void_codes, requested_by, created_at, updated_at, finished_at)"
        " SELECT 'R' || token, id, order_id, amount_minor, currency, 0, 'paid but not delivered',"
        " CASE status WHEN 'refunded' THEN 'succeeded' ELSE 'requested' END, 0, refund_ref, false, 'system',"
        " created_at, COALESCE(refunded_at, created_at), refunded_at"
        " FROM payments WHERE status IN ('refund_pending', 'refunded') AND amount_minor > 0"
    )
    op.execute("UPDATE payments SET refunded_minor = amount_minor WHERE status = 'refunded'")
    op.execute("UPDATE payments SET status = 'succeeded' WHERE status = 'refund_pending'")

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("refund_ref")
        batch_op.create_check_constraint(
            op.f("ck_payments_status_known"), "status IN ('pending', 'succeeded', 'closed', 'refunded')"
        )
        batch_op.create_check_constraint(
            op.f("ck_payments_refunds_within_amount"), "refunded_minor >= 0 AND refunded_minor <= amount_minor"
        )
        batch_op.create_check_constraint(op.f("ck_payments_fee_not_negative"), "fee_minor >= 0")
        batch_op.create_index("ix_payments_status_checked", ["status", "checked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_status_checked")
        batch_op.drop_constraint(op.f("ck_payments_fee_not_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_payments_refunds_within_amount"), type_="check")
        batch_op.drop_constraint(op.f("ck_payments_status_known"), type_="check")
        batch_op.add_column(sa.Column("refund_ref", sa.String(length=128), nullable=True))
    op.execute("UPDATE payments SET status = 'succeeded' WHERE status = 'closed'")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        for column in (
            "checked_at",
            "closed_at",
            "refunded_minor",
            "fee_minor",
            "payer",
            "action",
            "provider_ref",
            "method",
        ):
            batch_op.drop_column(column)
        batch_op.create_check_constraint(
            op.f("ck_payments_status_known"), "status IN ('pending', 'succeeded', 'refund_pending', 'refunded')"
        )
    op.drop_table("payment_refunds")
