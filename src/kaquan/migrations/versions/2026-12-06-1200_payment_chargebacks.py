"""payments: chargebacks (payment_chargebacks), one per dispute a gateway reported

Revision ID: 7d4c1e9a2b60
Revises: 5b7e2c91d4a3
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d4c1e9a2b60"
down_revision: str | None = "5b7e2c91d4a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "payment_chargebacks",
        sa.Column("id", big_id, nullable=False),
        sa.Column("chargeback_no", sa.String(length=40), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("dispute_id", sa.String(length=128), nullable=False),
        sa.Column("payment_id", big_id, nullable=False),
        sa.Column("order_id", big_id, nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee_minor", sa.Integer(), nullable=False),
        sa.Column("fee_back_minor", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("decision_id", big_id, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payment_chargebacks_amount_positive")),
        sa.CheckConstraint("fee_minor >= 0", name=op.f("ck_payment_chargebacks_fee_not_negative")),
        sa.CheckConstraint("fee_back_minor >= 0", name=op.f("ck_payment_chargebacks_fee_back_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_chargebacks")),
        sa.UniqueConstraint("chargeback_no", name=op.f("uq_payment_chargebacks_chargeback_no")),
        sa.UniqueConstraint("gateway", "dispute_id", name=op.f("uq_payment_chargebacks_gateway_dispute_id")),
    )
    op.create_index(op.f("ix_payment_chargebacks_payment_id"), "payment_chargebacks", ["payment_id"])
    op.create_index(op.f("ix_payment_chargebacks_order_id"), "payment_chargebacks", ["order_id"])


def downgrade() -> None:
    op.drop_table("payment_chargebacks")
