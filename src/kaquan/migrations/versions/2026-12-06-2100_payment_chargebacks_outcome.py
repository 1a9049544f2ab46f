"""payments: a chargeback's outcome (payment_chargebacks.status, closed_at, reinstated_minor, fee_returned_minor)

Revision ID: 3e8a5c0f7b21
Revises: 7d4c1e9a2b60
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3e8a5c0f7b21"
down_revision: str | None = "7d4c1e9a2b60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payment_chargebacks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="open"))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reinstated_minor", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("fee_returned_minor", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_check_constraint(
            op.f("ck_payment_chargebacks_status_known"),
            "status IN ('open', 'won', 'lost', 'warning_closed', 'prevented')",
        )
        batch_op.create_check_constraint(
            op.f("ck_payment_chargebacks_reinstated_not_negative"), "reinstated_minor >= 0"
        )
        batch_op.create_check_constraint(
            op.f("ck_payment_chargebacks_fee_returned_not_negative"), "fee_returned_minor >= 0"
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_chargebacks", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_payment_chargebacks_fee_returned_not_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_payment_chargebacks_reinstated_not_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_payment_chargebacks_status_known"), type_="check")
        batch_op.drop_column("fee_returned_minor")
        batch_op.drop_column("reinstated_minor")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("status")
