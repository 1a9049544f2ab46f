"""channels: channels, price lists, quotas, agents, agent keys; orders carry a source

Revision ID: a1d3e7f0c005
Revises: a1d3e7f0c004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c005"
down_revision: str | None = "a1d3e7f0c004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_OLD_STATUSES = (
    "status IN ('pending_payment', 'paid', 'delivered', 'cancelled', 'expired', 'paid_unfulfilled', 'refunded')"
)
_NEW_STATUSES = (
    "status IN ('pending_payment', 'processing', 'paid', 'delivered', 'cancelled', 'expired', "
    "'paid_unfulfilled', 'refunded')"
)


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("requested_quantity", sa.Integer(), nullable=True))
        batch_op.drop_constraint(op.f("uq_orders_channel_idempotency_key"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_orders_idempotency_key_channel_source"), ["idempotency_key", "channel", "source"]
        )
        batch_op.drop_constraint(op.f("ck_orders_status_known"), type_="check")
        batch_op.create_check_constraint(op.f("ck_orders_status_known"), _NEW_STATUSES)
    op.create_table(
        "channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("fee_rate_bp", sa.Integer(), nullable=False),
        sa.Column("warehouses", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('shop', 'wholesale', 'api', 'group_buy', 'marketplace')", name=op.f("ck_channels_kind_known")
        ),
        sa.CheckConstraint("fee_rate_bp >= 0 AND fee_rate_bp <= 10000", name=op.f("ck_channels_fee_rate_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("code", name=op.f("uq_channels_code")),
    )
    op.create_table(
        "channel_prices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("price_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.CheckConstraint("price_minor >= 0", name=op.f("ck_channel_prices_price_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_prices")),
        sa.UniqueConstraint("channel_id", "tier", "sku_id", name=op.f("uq_channel_prices_channel_id_tier_sku_id")),
    )
    op.create_table(
        "channel_quotas",
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("max_share_bp", sa.Integer(), nullable=False),
        sa.CheckConstraint("max_share_bp >= 0 AND max_share_bp <= 10000", name=op.f("ck_channel_quotas_share_valid")),
        sa.PrimaryKeyConstraint("channel_id", "sku_id", name=op.f("pk_channel_quotas")),
    )
    op.create_table(
        "channel_agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("credit_limit_minor", big_id, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("credit_limit_minor >= 0", name=op.f("ck_channel_agents_credit_limit_not_negative")),
        sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f("ck_channel_agents_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_agents")),
        sa.UniqueConstraint("code", name=op.f("uq_channel_agents_code")),
    )
    op.create_table(
        "channel_agent_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("previous_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ip_allowlist", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_agent_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_channel_agent_keys_key_id")),
    )
    with op.batch_alter_table("channel_agent_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_channel_agent_keys_agent_id"), ["agent_id"], unique=False)
    op.create_table(
        "channel_seen_nonces",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "nonce", name=op.f("pk_channel_seen_nonces")),
    )
    with op.batch_alter_table("channel_seen_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_channel_seen_nonces_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("channel_seen_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_seen_nonces_expires_at"))
    op.drop_table("channel_seen_nonces")
    with op.batch_alter_table("channel_agent_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_agent_keys_agent_id"))
    op.drop_table("channel_agent_keys")
    op.drop_table("channel_agents")
    op.drop_table("channel_quotas")
    op.drop_table("channel_prices")
    op.drop_table("channels")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_orders_status_known"), type_="check")
        batch_op.create_check_constraint(op.f("ck_orders_status_known"), _OLD_STATUSES)
        batch_op.drop_constraint(op.f("uq_orders_idempotency_key_channel_source"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_orders_channel_idempotency_key"), ["channel", "idempotency_key"]
        )
        batch_op.drop_column("requested_quantity")
        batch_op.drop_column("source")
