"""identity: admin users, sessions, API tokens

Revision ID: a1d3e7f0c001
Revises: 1c9be466035c
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "a1d3e7f0c001"
down_revision: str | None = "1c9be466035c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
