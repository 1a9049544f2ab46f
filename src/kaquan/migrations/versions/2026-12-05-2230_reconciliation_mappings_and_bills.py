"""reconciliation: saved column mappings of generic sources, and the daily bill fetches the worker runs

Revision ID: 7e2c90b4a1d8
Revises: 6dbeacd641c2
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7e2c90b4a1d8"
down_revision: str | None = "6dbeacd641c2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "reconciliation_mappings",
        sa.Column("name", sa.String(length=48), nullable=False),
        sa.Column("mapping", sa.String(length=8000), nullable=False),
        sa.Column("saved_by", sa.String(length=64), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_reconciliation_mappings")),
    )
    op.create_table(
        "reconciliation_bill_fetches",
        sa.Column("id", big_id, nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("statement_id", big_id, nullable=True),
        sa.Column("lines_new", sa.Integer(), nullable=True),
        sa.Column("differences", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('waiting', 'done', 'failed')", name=op.f("ck_reconciliation_bill_fetches_state_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_bill_fetches")),
        sa.UniqueConstraint("gateway", "day", name=op.f("uq_reconciliation_bill_fetches_gateway_day")),
    )
    with op.batch_alter_table("reconciliation_bill_fetches", schema=None) as batch_op:
        batch_op.create_index("ix_reconciliation_bill_fetches_due", ["state", "next_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_bill_fetches", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_bill_fetches_due")
    op.drop_table("reconciliation_bill_fetches")
    op.drop_table("reconciliation_mappings")
