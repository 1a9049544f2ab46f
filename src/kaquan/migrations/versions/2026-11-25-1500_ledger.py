"""ledger: double-entry accounts, transfers and postings

Revision ID: a1d3e7f0c004
Revises: a1d3e7f0c003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c004"
down_revision: str | None = "a1d3e7f0c003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "ledger_accounts",
        sa.Column("id", big_id, nullable=False),
        sa.Column("code", sa.String(length=96), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("normal", sa.String(length=6), nullable=False),
        sa.Column("floor_minor", sa.BigInteger(), nullable=True),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("normal IN ('debit', 'credit')", name=op.f("ck_ledger_accounts_normal_known")),
        sa.CheckConstraint(
            "floor_minor IS NULL OR balance_minor >= floor_minor", name=op.f("ck_ledger_accounts_balance_above_floor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
    )
    op.create_table(
        "ledger_transfers",
        sa.Column("id", big_id, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("memo", sa.String(length=300), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reverses_id", big_id, nullable=True),
        sa.ForeignKeyConstraint(
            ["reverses_id"], ["ledger_transfers.id"], name=op.f("fk_ledger_transfers_reverses_id_ledger_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transfers")),
        sa.UniqueConstraint("reference", "kind", name=op.f("uq_ledger_transfers_reference_kind")),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("id", big_id, nullable=False),
        sa.Column("transfer_id", big_id, nullable=False),
        sa.Column("account_id", big_id, nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor <> 0", name=op.f("ck_ledger_postings_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ledger_accounts.id"], name=op.f("fk_ledger_postings_account_id_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["ledger_transfers.id"], name=op.f("fk_ledger_postings_transfer_id_ledger_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_postings")),
    )
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_postings_account_id"), ["account_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_postings_transfer_id"), ["transfer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_postings_transfer_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_postings_account_id"))
    op.drop_table("ledger_postings")
    op.drop_table("ledger_transfers")
    op.drop_table("ledger_accounts")
