"""kit: operator alerts, one row per condition per interval

Revision ID: 5b7e2a9c4d10
Revises: 3f8a1c2d9e70
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e2a9c4d10"
down_revision: str | None = "3f8a1c2d9e70"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operator_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_operator_alerts_key")),
    )


def downgrade() -> None:
    op.drop_table("operator_alerts")
