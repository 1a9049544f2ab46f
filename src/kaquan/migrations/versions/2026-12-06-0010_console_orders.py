"""orders: indexes for the console's order list, and staff notes on orders

Revision ID: 3b9d1c7e5a20
Revises: 3b8d41c6e2f7
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b9d1c7e5a20"
down_revision: str | None = "3b8d41c6e2f7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_index("ix_orders_status_id", "orders", ["status", "id"])
    op.create_index("ix_orders_channel_id", "orders", ["channel", "id"])
    op.create_index("ix_orders_sku_id_id", "orders", ["sku_id", "id"])
    op.create_index("ix_orders_contact_lower", "orders", [sa.text("lower(contact)"), "id"])
    op.create_index("ix_orders_created_at", "orders", ["created_at"])
    op.create_table(
        "order_notes",
        sa.Column("id", big_id, nullable=False),
        sa.Column("order_id", big_id, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("body", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_notes")),
    )
    op.create_index(op.f("ix_order_notes_order_id"), "order_notes", ["order_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_order_notes_order_id"), table_name="order_notes")
    op.drop_table("order_notes")
    for name in (
        "ix_orders_created_at",
        "ix_orders_contact_lower",
        "ix_orders_sku_id_id",
        "ix_orders_channel_id",
        "ix_orders_status_id",
    ):
        op.drop_index(name, table_name="orders")
