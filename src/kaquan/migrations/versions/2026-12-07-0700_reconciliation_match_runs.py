"""reconciliation: plain matches (a payment line and the payment only it names, agreeing, of one day) are kept
as runs of line ids in reconciliation_match_runs, not a row per pair

Revision ID: 2c6f8a1d9e53
Revises: 7b3e9d2c4a18
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2c6f8a1d9e53"
down_revision: str | None = "7b3e9d2c4a18"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "reconciliation_match_runs",
        sa.Column("first_line_id", big_id, autoincrement=False, nullable=False),
        sa.Column("last_line_id", big_id, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.CheckConstraint("first_line_id <= last_line_id", name=op.f("ck_reconciliation_match_runs_ordered")),
        sa.CheckConstraint("lines > 0", name=op.f("ck_reconciliation_match_runs_not_empty")),
        sa.PrimaryKeyConstraint("first_line_id", name=op.f("pk_reconciliation_match_runs")),
    )
    op.create_index("ix_reconciliation_match_runs_source_day", "reconciliation_match_runs", ["source", "business_day"])


def downgrade() -> None:
    # Each line of a run back as the compact row it was before: its record is the payment its reference names.
    op.execute(
        "INSERT INTO reconciliation_matches (line_id, source, business_day, record_kind, record_ref)"
        " SELECT l.id, r.source, r.business_day, 'payment', l.merchant_ref FROM reconciliation_match_runs r"
        " JOIN reconciliation_lines l ON l.source = r.source AND l.business_day = r.business_day"
        " AND l.id BETWEEN r.first_line_id AND r.last_line_id ORDER BY l.id"
    )
    op.drop_index("ix_reconciliation_match_runs_source_day", table_name="reconciliation_match_runs")
    op.drop_table("reconciliation_match_runs")
