"""risk: the review queue (orders held for a person's verdict) and decision labels for training

Revision ID: 5c2e8a1f4d31
Revises: 5b7e2a9c4d10
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c2e8a1f4d31"
down_revision: str | None = "5b7e2a9c4d10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("risk_decisions") as batch:
        batch.add_column(sa.Column("label", sa.String(length=8), nullable=True))
        batch.create_check_constraint(
            op.f("ck_risk_decisions_label_known"), "label IS NULL OR label IN ('fraud', 'legit')"
        )
    op.create_table(
        "risk_reviews",
        sa.Column("id", big_id, nullable=False),
        sa.Column("order_id", big_id, nullable=False),
        sa.Column("decision_id", big_id, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("ip", sa.String(length=120), nullable=True),
        sa.Column("device", sa.String(length=120), nullable=True),
        sa.Column("contact", sa.String(length=120), nullable=True),
        sa.Column("account", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("verdict_by", sa.String(length=120), nullable=True),
        sa.Column("verdict_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verdict_reason", sa.String(length=300), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'approved', 'declined', 'fraud')", name=op.f("ck_risk_reviews_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_reviews")),
        sa.UniqueConstraint("order_id", name=op.f("uq_risk_reviews_order_id")),
    )
    op.create_index("ix_risk_reviews_status_id", "risk_reviews", ["status", "id"])
    op.create_index("ix_risk_reviews_contact", "risk_reviews", ["contact"])
    op.create_index("ix_risk_reviews_device", "risk_reviews", ["device"])
    op.create_index("ix_risk_reviews_ip", "risk_reviews", ["ip"])


def downgrade() -> None:
    op.drop_table("risk_reviews")
    with op.batch_alter_table("risk_decisions") as batch:
        batch.drop_constraint(op.f("ck_risk_decisions_label_known"), type_="check")
        batch.drop_column("label")
