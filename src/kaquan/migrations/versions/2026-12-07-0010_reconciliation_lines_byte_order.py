"""reconciliation: the lines' unique key (source, identity) compares bytes on PostgreSQL (COLLATE "C"), which
builds and grows its B-tree about twice as fast as the database's locale; SQLite compares bytes already

Revision ID: 5d1c7e9a2f40
Revises: 8e2f4a6c1b37
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5d1c7e9a2f40"
down_revision: str | None = "8e2f4a6c1b37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Same type, another collation: PostgreSQL keeps the rows as they are and rebuilds the unique index.
    op.execute(
        "ALTER TABLE reconciliation_lines"
        f" ALTER COLUMN source TYPE varchar(64) COLLATE {collation},"
        f" ALTER COLUMN identity TYPE varchar(160) COLLATE {collation}"
    )


def upgrade() -> None:
    _collate('"C"')


def downgrade() -> None:
    _collate('"default"')
