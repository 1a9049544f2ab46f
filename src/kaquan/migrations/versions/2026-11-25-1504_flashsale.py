"""flashsale: events and purchases

Revision ID: a1d3e7f0c008
Revises: a1d3e7f0c007
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c008"
down_revision: str | None = "a1d3e7f0c007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "flashsale_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("allotted", sa.Integer(), nullable=False),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.Column("price_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("per_buyer_limit", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_flashsale_events_ends_after_start")),
        sa.CheckConstraint(
            "stock >= 1 AND allotted >= 0 AND released >= 0", name=op.f("ck_flashsale_events_stock_valid")
        ),
        sa.CheckConstraint("per_buyer_limit >= 1", name=op.f("ck_flashsale_events_limit_positive")),
        sa.CheckConstraint("price_minor >= 0", name=op.f("ck_flashsale_events_price_not_negative")),
        sa.CheckConstraint("status IN ('scheduled', 'live', 'ended')", name=op.f("ck_flashsale_events_status_known")),
        sa.ForeignKeyConstraint(["sku_id"], ["catalog_skus.id"], name=op.f("fk_flashsale_events_sku_id_catalog_skus")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flashsale_events")),
    )
    with op.batch_alter_table("flashsale_events", schema=None) as batch_op:
        batch_op.create_index("ix_flashsale_events_status", ["status", "starts_at"], unique=False)

    op.create_table(
        "flashsale_purchases",
        sa.Column("id", big_id, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("buyer", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("order_id", big_id, nullable=False),
        sa.Column("order_number", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity >= 1", name=op.f("ck_flashsale_purchases_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["flashsale_events.id"], name=op.f("fk_flashsale_purchases_event_id_flashsale_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flashsale_purchases")),
        sa.UniqueConstraint("event_id", "key", name=op.f("uq_flashsale_purchases_event_id_key")),
    )
    with op.batch_alter_table("flashsale_purchases", schema=None) as batch_op:
        batch_op.create_index("ix_flashsale_purchases_buyer", ["event_id", "buyer"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flashsale_purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_flashsale_purchases_buyer")
    op.drop_table("flashsale_purchases")
    with op.batch_alter_table("flashsale_events", schema=None) as batch_op:
        batch_op.drop_index("ix_flashsale_events_status")
    op.drop_table("flashsale_events")
