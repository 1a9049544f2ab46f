"""catalog: what the shop's product pages show (category, usage, validity, featured, order) and product images

Revision ID: c5a0b7d2e401
Revises: a1d3e7f0c120
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5a0b7d2e401"
down_revision: str | None = "a1d3e7f0c120"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category", sa.String(length=64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("usage", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("validity", sa.String(length=200), server_default="", nullable=False))
        batch_op.add_column(sa.Column("featured", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("sort_order", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index(batch_op.f("ix_catalog_products_category"), ["category"], unique=False)

    op.create_table(
        "catalog_product_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["catalog_products.id"],
            name=op.f("fk_catalog_product_images_product_id_catalog_products"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_product_images")),
    )
    with op.batch_alter_table("catalog_product_images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_product_images_product_id"), ["product_id"], unique=False)

    op.create_table(
        "catalog_product_image_files",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["catalog_product_images.id"],
            name=op.f("fk_catalog_product_image_files_image_id_catalog_product_images"),
        ),
        sa.PrimaryKeyConstraint("image_id", "width", name=op.f("pk_catalog_product_image_files")),
    )


def downgrade() -> None:
    op.drop_table("catalog_product_image_files")
    with op.batch_alter_table("catalog_product_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_product_images_product_id"))
    op.drop_table("catalog_product_images")
    with op.batch_alter_table("catalog_products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_products_category"))
        batch_op.drop_column("sort_order")
        batch_op.drop_column("featured")
        batch_op.drop_column("validity")
        batch_op.drop_column("usage")
        batch_op.drop_column("category")
