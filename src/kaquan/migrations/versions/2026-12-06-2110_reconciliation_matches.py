"""reconciliation: a line and a record that agree are one compact row of reconciliation_matches, not an item;
the lines' day index is a block-range index on PostgreSQL

Revision ID: 8e2f4a6c1b37
Revises: 3e8a5c0f7b21
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e2f4a6c1b37"
down_revision: str | None = "3e8a5c0f7b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The pairs matching classed `matched` and nobody touched: the ones matching now keeps compact (a marketplace
# store's stay items: its payouts are checked against their figures).
_MOVE = (
    "INSERT INTO reconciliation_matches (line_id, source, business_day, record_kind, record_ref)"
    " SELECT line_id, source, business_day, record_kind, record_ref FROM reconciliation_items"
    " WHERE class_ = 'matched' AND state = 'auto' AND line_id IS NOT NULL AND record_kind IS NOT NULL"
    " AND record_ref IS NOT NULL AND source NOT LIKE 'marketplace:%' ORDER BY line_id"
)
_MOVED = (
    "DELETE FROM reconciliation_items"
    " WHERE class_ = 'matched' AND state = 'auto' AND line_id IS NOT NULL AND record_kind IS NOT NULL"
    " AND record_ref IS NOT NULL AND source NOT LIKE 'marketplace:%'"
)


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "reconciliation_matches",
        sa.Column("line_id", big_id, autoincrement=False, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("record_kind", sa.String(length=16), nullable=False),
        sa.Column("record_ref", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("line_id", name=op.f("pk_reconciliation_matches")),
    )
    op.create_index(
        "ix_reconciliation_matches_source_day",
        "reconciliation_matches",
        ["source", "business_day"],
        unique=False,
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    )
    op.execute(_MOVE)
    op.execute(_MOVED)
    with op.batch_alter_table("reconciliation_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_lines_source_day")
        batch_op.create_index(
            "ix_reconciliation_lines_source_day",
            ["source", "business_day"],
            unique=False,
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        )


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_lines_source_day")
        batch_op.create_index("ix_reconciliation_lines_source_day", ["source", "business_day"], unique=False)
    # A matched pair's figures are its line's (they agree); kaquan's status of the record was not kept: a
    # matched payment or refund is one kaquan saw succeed.
    op.execute(
        "INSERT INTO reconciliation_items (source, business_day, class_, line_id, record_kind, record_ref, currency,"
        " expected_minor, found_minor, expected_fee_minor, found_fee_minor, expected_status, found_status,"
        " line_kind, state, note, matched_at)"
        " SELECT m.source, m.business_day, 'matched', m.line_id, m.record_kind, m.record_ref, l.currency,"
        " l.amount_minor, l.amount_minor, l.fee_minor, l.fee_minor, 'succeeded', l.status, l.kind, 'auto', '',"
        " l.occurred_at FROM reconciliation_matches m JOIN reconciliation_lines l ON l.id = m.line_id"
        " ORDER BY m.line_id"
    )
    op.drop_index("ix_reconciliation_matches_source_day", table_name="reconciliation_matches")
    op.drop_table("reconciliation_matches")
