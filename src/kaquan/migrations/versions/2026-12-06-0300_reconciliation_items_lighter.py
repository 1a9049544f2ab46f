"""reconciliation: items without a unique key over their records, and a block-range day index on PostgreSQL

Revision ID: 5c1e7a9b3d24
Revises: 5c2e7a9d4b10
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5c1e7a9b3d24"
down_revision: str | None = "5c2e7a9d4b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_reconciliation_items_source_record_kind_record_ref"), type_="unique")
        batch_op.drop_index("ix_reconciliation_items_source_day")
        batch_op.create_index(
            "ix_reconciliation_items_source_day",
            ["source", "business_day"],
            unique=False,
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        )


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_items_source_day")
        batch_op.create_index("ix_reconciliation_items_source_day", ["source", "business_day"], unique=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_reconciliation_items_source_record_kind_record_ref"), ["source", "record_kind", "record_ref"]
        )
