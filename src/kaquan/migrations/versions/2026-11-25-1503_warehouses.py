"""inventory: warehouse rules and stock transfers

Warehouses get a kind (own or consignment) and a consignee; the claim indexes of
codes and serial ranges lead with the warehouse, so a claim that follows a
warehouse order reads each warehouse's available units already in FEFO order.

Revision ID: a1d3e7f0c007
Revises: a1d3e7f0c006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c007"
down_revision: str | None = "a1d3e7f0c006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AVAILABLE = sa.text("status = 'available'")


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("inventory_warehouses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="own", nullable=False))
        batch_op.add_column(sa.Column("consignee", sa.String(length=200), nullable=True))
        batch_op.create_check_constraint(op.f("ck_inventory_warehouses_kind_known"), "kind IN ('own', 'consignment')")

    _claim_indexes(("sku_id", "warehouse_id", "expires_on", "id"))

    op.create_table(
        "inventory_refill_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("source_warehouse_id", sa.Integer(), nullable=False),
        sa.Column("refill_units", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("low_since", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "warehouse_id <> source_warehouse_id", name=op.f("ck_inventory_refill_rules_distinct_warehouses")
        ),
        sa.CheckConstraint("threshold > 0", name=op.f("ck_inventory_refill_rules_threshold_positive")),
        sa.CheckConstraint("refill_units > 0", name=op.f("ck_inventory_refill_rules_refill_units_positive")),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["catalog_skus.id"], name=op.f("fk_inventory_refill_rules_sku_id_catalog_skus")
        ),
        sa.ForeignKeyConstraint(
            ["warehouse_id"],
            ["inventory_warehouses.id"],
            name=op.f("fk_inventory_refill_rules_warehouse_id_inventory_warehouses"),
        ),
        sa.ForeignKeyConstraint(
            ["source_warehouse_id"],
            ["inventory_warehouses.id"],
            name=op.f("fk_inventory_refill_rules_source_warehouse"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_refill_rules")),
        sa.UniqueConstraint(
            "sku_id", "warehouse_id", "source_warehouse_id", name=op.f("uq_inventory_refill_rules_route")
        ),
    )

    op.create_table(
        "inventory_stock_transfers",
        sa.Column("id", big_id, nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("from_warehouse_id", sa.Integer(), nullable=False),
        sa.Column("to_warehouse_id", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "from_warehouse_id <> to_warehouse_id", name=op.f("ck_inventory_stock_transfers_distinct_warehouses")
        ),
        sa.CheckConstraint("units > 0", name=op.f("ck_inventory_stock_transfers_units_positive")),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["catalog_skus.id"], name=op.f("fk_inventory_stock_transfers_sku_id_catalog_skus")
        ),
        sa.ForeignKeyConstraint(
            ["from_warehouse_id"],
            ["inventory_warehouses.id"],
            name=op.f("fk_inventory_stock_transfers_from_warehouse"),
        ),
        sa.ForeignKeyConstraint(
            ["to_warehouse_id"],
            ["inventory_warehouses.id"],
            name=op.f("fk_inventory_stock_transfers_to_warehouse"),
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["inventory_refill_rules.id"],
            name=op.f("fk_inventory_stock_transfers_rule_id_inventory_refill_rules"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_stock_transfers")),
    )
    with op.batch_alter_table("inventory_stock_transfers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inventory_stock_transfers_sku_id"), ["sku_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inventory_stock_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inventory_stock_transfers_sku_id"))
    op.drop_table("inventory_stock_transfers")
    op.drop_table("inventory_refill_rules")

    _claim_indexes(("sku_id", "expires_on", "id"))

    with op.batch_alter_table("inventory_warehouses", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_inventory_warehouses_kind_known"), type_="check")
        batch_op.drop_column("consignee")
        batch_op.drop_column("kind")


def _claim_indexes(columns: tuple[str, ...]) -> None:
    """Rebuild the partial claim indexes of codes and serial ranges over `columns`."""
    for table in ("inventory_codes", "inventory_segment_ranges"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_claim", postgresql_where=_AVAILABLE, sqlite_where=_AVAILABLE)
            batch_op.create_index(
                f"ix_{table}_claim",
                list(columns),
                unique=False,
                postgresql_where=_AVAILABLE,
                sqlite_where=_AVAILABLE,
            )
