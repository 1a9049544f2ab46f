"""reconciliation: statements imported, their lines stored once each, and the matching's items (the worklist)

Revision ID: 6dbeacd641c2
Revises: b7c2e9a4d201
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6dbeacd641c2"
down_revision: str | None = "b7c2e9a4d201"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "reconciliation_items",
        sa.Column("id", big_id, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("class_", sa.String(length=32), nullable=False),
        sa.Column("line_id", big_id, nullable=True),
        sa.Column("record_kind", sa.String(length=16), nullable=True),
        sa.Column("record_ref", sa.String(length=128), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expected_minor", sa.Integer(), nullable=True),
        sa.Column("found_minor", sa.Integer(), nullable=True),
        sa.Column("expected_fee_minor", sa.Integer(), nullable=True),
        sa.Column("found_fee_minor", sa.Integer(), nullable=True),
        sa.Column("expected_status", sa.String(length=20), nullable=True),
        sa.Column("found_status", sa.String(length=32), nullable=True),
        sa.Column("line_kind", sa.String(length=16), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ledger_reference", sa.String(length=128), nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "class_ IN ('matched', 'missing_in_statement', 'missing_in_kaquan', 'amount_mismatch', 'duplicate_line', 'refund_missing_in_statement', 'refund_missing_in_kaquan', 'refund_amount_mismatch', 'status_mismatch', 'fee_mismatch', 'timing')",
            name=op.f("ck_reconciliation_items_class_known"),
        ),
        sa.CheckConstraint(
            "state IN ('open', 'annotated', 'resolved', 'auto')", name=op.f("ck_reconciliation_items_state_known")
        ),
        sa.CheckConstraint(
            "line_id IS NOT NULL OR record_ref IS NOT NULL", name=op.f("ck_reconciliation_items_line_or_record")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_items")),
        sa.UniqueConstraint("line_id", name=op.f("uq_reconciliation_items_line_id")),
        sa.UniqueConstraint(
            "source", "record_kind", "record_ref", name=op.f("uq_reconciliation_items_source_record_kind_record_ref")
        ),
    )
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.create_index("ix_reconciliation_items_source_day", ["source", "business_day"], unique=False)
        batch_op.create_index(
            "ix_reconciliation_items_worklist",
            ["state", "business_day"],
            unique=False,
            postgresql_where=sa.text("state <> 'auto'"),
            sqlite_where=sa.text("state <> 'auto'"),
        )

    op.create_table(
        "reconciliation_lines",
        sa.Column("id", big_id, nullable=False),
        sa.Column("statement_id", big_id, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("identity", sa.String(length=160), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("fee_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("merchant_ref", sa.String(length=128), nullable=False),
        sa.Column("counterparty_ref", sa.String(length=128), nullable=False),
        sa.Column("refund_ref", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "kind IN ('payment', 'refund', 'payout', 'fee', 'adjustment')",
            name=op.f("ck_reconciliation_lines_kind_known"),
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_reconciliation_lines_amount_not_negative")),
        sa.CheckConstraint("occurrence >= 0", name=op.f("ck_reconciliation_lines_occurrence_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_lines")),
        sa.UniqueConstraint(
            "source", "identity", "occurrence", name=op.f("uq_reconciliation_lines_source_identity_occurrence")
        ),
    )
    with op.batch_alter_table("reconciliation_lines", schema=None) as batch_op:
        batch_op.create_index("ix_reconciliation_lines_source_day", ["source", "business_day"], unique=False)

    op.create_table(
        "reconciliation_statements",
        sa.Column("id", big_id, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("lines_read", sa.Integer(), nullable=False),
        sa.Column("lines_new", sa.Integer(), nullable=False),
        sa.Column("lines_known", sa.Integer(), nullable=False),
        sa.Column("lines_repeated", sa.Integer(), nullable=False),
        sa.Column("imported_by", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_statements")),
        sa.UniqueConstraint("source", "sha256", name=op.f("uq_reconciliation_statements_source_sha256")),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_statements")
    with op.batch_alter_table("reconciliation_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_lines_source_day")

    op.drop_table("reconciliation_lines")
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_reconciliation_items_worklist",
            postgresql_where=sa.text("state <> 'auto'"),
            sqlite_where=sa.text("state <> 'auto'"),
        )
        batch_op.drop_index("ix_reconciliation_items_source_day")

    op.drop_table("reconciliation_items")
