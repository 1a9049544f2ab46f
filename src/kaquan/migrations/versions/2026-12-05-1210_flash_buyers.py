"""buyers: contact verification codes; flashsale: verified buyers, per-address and per-device limits

Revision ID: a1d3e7f0c103
Revises: a1d3e7f0c008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c103"
down_revision: str | None = "a1d3e7f0c102"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Events created before these limits existed keep selling as they did: no address or device cap to speak of.
_UNCAPPED = "10000000"


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "buyers_codes",
        sa.Column("id", big_id, nullable=False),
        sa.Column("contact_digest", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("code_hash", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_buyers_codes_attempts_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buyers_codes")),
    )
    with op.batch_alter_table("buyers_codes", schema=None) as batch_op:
        batch_op.create_index("ix_buyers_codes_contact", ["contact_digest", "created_at"], unique=False)
        batch_op.create_index("ix_buyers_codes_ip", ["ip", "created_at"], unique=False)

    with op.batch_alter_table("flashsale_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("requires_verified_buyer", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("per_ip_limit", sa.Integer(), nullable=False, server_default=_UNCAPPED))
        batch_op.add_column(sa.Column("per_device_limit", sa.Integer(), nullable=False, server_default=_UNCAPPED))
        batch_op.create_check_constraint(
            op.f("ck_flashsale_events_client_limits_positive"), "per_ip_limit >= 1 AND per_device_limit >= 1"
        )
    with op.batch_alter_table("flashsale_purchases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ip_tag", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("device_tag", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_flashsale_purchases_ip_tag", ["event_id", "ip_tag"], unique=False)
        batch_op.create_index("ix_flashsale_purchases_device_tag", ["event_id", "device_tag"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flashsale_purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_flashsale_purchases_device_tag")
        batch_op.drop_index("ix_flashsale_purchases_ip_tag")
        batch_op.drop_column("device_tag")
        batch_op.drop_column("ip_tag")
    with op.batch_alter_table("flashsale_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_flashsale_events_client_limits_positive"), type_="check")
        batch_op.drop_column("per_device_limit")
        batch_op.drop_column("per_ip_limit")
        batch_op.drop_column("requires_verified_buyer")
    with op.batch_alter_table("buyers_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_buyers_codes_ip")
        batch_op.drop_index("ix_buyers_codes_contact")
    op.drop_table("buyers_codes")
