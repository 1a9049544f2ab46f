"""inventory: redemption of merchant-issued vouchers

Revision ID: a1d3e7f0c003
Revises: a1d3e7f0c002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c003"
down_revision: str | None = "a1d3e7f0c002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "inventory_redemptions",
        sa.Column("id", big_id, nullable=False),
        sa.Column("code_id", big_id, nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("order_id", big_id, nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_offline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "offline = (redeemed_offline_at IS NOT NULL)", name=op.f("ck_inventory_redemptions_offline_has_time")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_redemptions")),
        sa.UniqueConstraint("code_id", name=op.f("uq_inventory_redemptions_code_id")),
    )
    with op.batch_alter_table("inventory_redemptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inventory_redemptions_redeemed_at"), ["redeemed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inventory_redemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inventory_redemptions_redeemed_at"))
    op.drop_table("inventory_redemptions")
