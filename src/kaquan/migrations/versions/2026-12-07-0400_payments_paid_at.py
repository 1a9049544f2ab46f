"""payments: an index on when a payment or refund counts as done (succeeded, else created), by which
reconciliation selects a day's records; without it every match read every payment ever made

Revision ID: 7b3e9d2c4a18
Revises: 5d1c7e9a2f40
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b3e9d2c4a18"
down_revision: str | None = "5d1c7e9a2f40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_payments_paid_at", "payments", [sa.text("coalesce(succeeded_at, created_at)")])
    op.create_index("ix_payment_refunds_refunded_at", "payment_refunds", [sa.text("coalesce(finished_at, created_at)")])


def downgrade() -> None:
    op.drop_index("ix_payment_refunds_refunded_at", table_name="payment_refunds")
    op.drop_index("ix_payments_paid_at", table_name="payments")
