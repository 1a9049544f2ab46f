"""catalog: categories as their own list (so one can exist before its first product) and a product's delivery promise

Revision ID: 3b8d41c6e2f7
Revises: 3b8d1f6e2c47
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b8d41c6e2f7"
down_revision: str | None = "3b8d1f6e2c47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery_promise", sa.String(length=200), server_default="", nullable=False))
    op.create_table(
        "catalog_categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_catalog_categories_name")),
    )
    # The categories products already name become the first entries of the list.
    op.execute(
        "INSERT INTO catalog_categories (name, created_at) "
        "SELECT DISTINCT category, CURRENT_TIMESTAMP FROM catalog_products WHERE category <> ''"
    )


def downgrade() -> None:
    op.drop_table("catalog_categories")
    with op.batch_alter_table("catalog_products", schema=None) as batch_op:
        batch_op.drop_column("delivery_promise")
