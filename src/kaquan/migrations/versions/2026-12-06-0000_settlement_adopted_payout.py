"""settlement: the statement payout a run adopted instead of posting its own

Revision ID: 3b8d1f6e2c47
Revises: 7e2c90b4a1d8
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b8d1f6e2c47"
down_revision: str | None = "7e2c90b4a1d8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("settlement_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payout_reference", sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_settlement_runs_payout_reference"), ["payout_reference"])


def downgrade() -> None:
    with op.batch_alter_table("settlement_runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_settlement_runs_payout_reference"), type_="unique")
        batch_op.drop_column("payout_reference")
