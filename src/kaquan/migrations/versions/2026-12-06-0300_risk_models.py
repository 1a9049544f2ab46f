"""risk: learned models (risk_models), and each decision's model scores (its label came with the reviews)

Revision ID: 5c2e7a9d4b10
Revises: 5c2e8a1f4d31
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c2e7a9d4b10"
down_revision: str | None = "5c2e8a1f4d31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "risk_models",
        sa.Column("id", big_id, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trained_by", sa.String(length=120), nullable=False),
        sa.Column("feature_names", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("trees", sa.JSON(), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("promoted_by", sa.String(length=120), nullable=True),
        sa.CheckConstraint("status IN ('shadow', 'active', 'retired')", name=op.f("ck_risk_models_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_models")),
        sa.UniqueConstraint("version", name=op.f("uq_risk_models_version")),
    )
    where = sa.text("status = 'active'")
    op.create_index(
        "uq_risk_models_one_active", "risk_models", ["status"], unique=True, postgresql_where=where, sqlite_where=where
    )
    with op.batch_alter_table("risk_decisions") as batch:
        batch.add_column(sa.Column("model_score", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("shadow_score", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("risk_decisions") as batch:
        batch.drop_column("shadow_score")
        batch.drop_column("model_score")
    op.drop_index("uq_risk_models_one_active", table_name="risk_models")
    op.drop_table("risk_models")
