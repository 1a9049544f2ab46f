"""orders: the verified contact of a signed-in buyer and the buyer's language; notifications: what was sent

Revision ID: a1d3e7f0c120
Revises: a1d3e7f0c105
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c120"
down_revision: str | None = "a1d3e7f0c105"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("buyer_contact", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("lang", sa.String(length=8), server_default="zh", nullable=False))
        batch_op.create_index("ix_orders_buyer_contact", ["buyer_contact", "id"], unique=False)
    op.create_table(
        "notifications_sent",
        sa.Column("id", big_id, nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("order_id", big_id, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications_sent")),
        sa.UniqueConstraint("key", name=op.f("uq_notifications_sent_key")),
    )
    with op.batch_alter_table("notifications_sent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_sent_order_id"), ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications_sent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_sent_order_id"))
    op.drop_table("notifications_sent")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_buyer_contact")
        batch_op.drop_column("lang")
        batch_op.drop_column("buyer_contact")
