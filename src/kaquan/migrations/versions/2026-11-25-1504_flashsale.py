"""flashsale: events and purchases

Revision ID: a1d3e7f0c008
Revises: a1d3e7f0c007
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "a1d3e7f0c008"
down_revision: str | None = "a1d3e7f0c007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
