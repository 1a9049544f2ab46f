"""audit: hash chain and its head; inventory: quarantined batches

Revision ID: a1d3e7f0c002
Revises: a1d3e7f0c001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kaquan.audit.service import GENESIS, entry_hash
from kaquan.kit.models import UTCDateTime

revision: str = "a1d3e7f0c002"
down_revision: str | None = "a1d3e7f0c001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    last_id, last_hash = _chain_existing_entries()
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f("ix_audit_entries_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entries_target"), ["target"], unique=False)

    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", _BIG_ID, nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    if last_id:
        op.bulk_insert(head, [{"id": 1, "last_id": last_id, "last_hash": last_hash}])

    with op.batch_alter_table("inventory_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True))


def _chain_existing_entries() -> tuple[int, str]:
    """Chain the entries written before the chain existed, renumbered 1..n in their order."""
    entries = sa.table(
        "audit_entries",
        sa.column("id", _BIG_ID),
        sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("target", sa.String()),
        sa.column("before", sa.JSON()),
        sa.column("after", sa.JSON()),
        sa.column("ip", sa.String()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    bind = op.get_bind()
    rows = list(bind.execute(sa.select(entries).order_by(entries.c.id)))
    prev_hash, new_id = GENESIS, 0
    for new_id, row in enumerate(rows, start=1):
        if row.id != new_id:
            bind.execute(sa.update(entries).where(entries.c.id == row.id).values(id=new_id))
        digest = entry_hash(prev_hash, new_id, row.at, row.actor, row.action, row.target, row.before, row.after, row.ip)
        bind.execute(sa.update(entries).where(entries.c.id == new_id).values(prev_hash=prev_hash, hash=digest))
        prev_hash = digest
    return new_id, prev_hash


def downgrade() -> None:
    with op.batch_alter_table("inventory_batches", schema=None) as batch_op:
        batch_op.drop_column("quarantined_at")

    op.drop_table("audit_head")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_target"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_actor"))
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
