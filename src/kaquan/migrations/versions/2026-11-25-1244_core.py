"""core: catalog, inventory (codes, segments, warehouses), orders, payments, outbox, audit, keys

Revision ID: 1c9be466035c
Revises: -
Create Date: 2026-11-25 12:44:16.528137
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1c9be466035c"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entries_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entries_at"), ["at"], unique=False)

    op.create_table(
        "catalog_products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_products")),
    )
    op.create_table(
        "inventory_warehouses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_warehouses")),
        sa.UniqueConstraint("code", name=op.f("uq_inventory_warehouses_code")),
    )
    op.bulk_insert(
        sa.table("inventory_warehouses", sa.column("code", sa.String()), sa.column("name", sa.String())),
        [{"code": "main", "name": "Main warehouse 主仓"}],
    )
    op.create_table(
        "inventory_reveals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("viewer", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_reveals")),
    )
    with op.batch_alter_table("inventory_reveals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inventory_reveals_order_id"), ["order_id"], unique=False)

    op.create_table(
        "kit_keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_kit_keys")),
    )
    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=True),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
    )
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_events_order_id"), ["order_id"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_minor", sa.Integer(), nullable=False),
        sa.Column("total_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("buyer_ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending_payment', 'paid', 'delivered', 'cancelled', 'expired', 'paid_unfulfilled', 'refunded')",
            name=op.f("ck_orders_status_known"),
        ),
        sa.CheckConstraint("quantity >= 1", name=op.f("ck_orders_quantity_positive")),
        sa.CheckConstraint(
            "total_minor = unit_price_minor * quantity", name=op.f("ck_orders_total_is_price_times_quantity")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("channel", "idempotency_key", name=op.f("uq_orders_channel_idempotency_key")),
        sa.UniqueConstraint("number", name=op.f("uq_orders_number")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_sku_id"), ["sku_id"], unique=False)
        batch_op.create_index("ix_orders_status_expires", ["status", "expires_at"], unique=False)

    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_events_due_at"), ["due_at"], unique=False)

    op.create_table(
        "payment_callbacks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("payment_token", sa.String(length=40), nullable=True),
        sa.Column("txn_id", sa.String(length=128), nullable=True),
        sa.Column("body_sha256", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_callbacks")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("gateway_txn_id", sa.String(length=128), nullable=True),
        sa.Column("refund_ref", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'refund_pending', 'refunded')",
            name=op.f("ck_payments_status_known"),
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_payments_amount_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("gateway_txn_id", name=op.f("uq_payments_gateway_txn_id")),
        sa.UniqueConstraint("token", name=op.f("uq_payments_token")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_order_id"), ["order_id"], unique=False)

    op.create_table(
        "catalog_skus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("face_value_minor", sa.Integer(), nullable=False),
        sa.Column("price_minor", sa.Integer(), nullable=False),
        sa.Column("cost_minor", sa.Integer(), nullable=False),
        sa.Column("stock_kind", sa.String(length=16), nullable=False),
        sa.Column("code_rule", sa.JSON(), nullable=False),
        sa.Column("encrypt_card_no", sa.Boolean(), nullable=False),
        sa.Column("max_per_order", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("max_per_order >= 1", name=op.f("ck_catalog_skus_max_per_order_positive")),
        sa.CheckConstraint(
            "price_minor >= 0 AND cost_minor >= 0 AND face_value_minor >= 0",
            name=op.f("ck_catalog_skus_money_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["catalog_products.id"], name=op.f("fk_catalog_skus_product_id_catalog_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_skus")),
        sa.UniqueConstraint("code", name=op.f("uq_catalog_skus_code")),
    )
    with op.batch_alter_table("catalog_skus", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_skus_product_id"), ["product_id"], unique=False)

    op.create_table(
        "inventory_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("supplier", sa.String(length=200), nullable=False),
        sa.Column("unit_cost_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('codes', 'segment')", name=op.f("ck_inventory_batches_kind_known")),
        sa.CheckConstraint("unit_cost_minor >= 0", name=op.f("ck_inventory_batches_unit_cost_not_negative")),
        sa.ForeignKeyConstraint(["sku_id"], ["catalog_skus.id"], name=op.f("fk_inventory_batches_sku_id_catalog_skus")),
        sa.ForeignKeyConstraint(
            ["warehouse_id"],
            ["inventory_warehouses.id"],
            name=op.f("fk_inventory_batches_warehouse_id_inventory_warehouses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_batches")),
    )
    with op.batch_alter_table("inventory_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inventory_batches_sku_id"), ["sku_id"], unique=False)

    op.create_table(
        "inventory_codes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("card_no", sa.String(length=128), nullable=True),
        sa.Column("card_no_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("hold_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sold_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('available', 'reserved', 'sold', 'redeemed', 'voided')",
            name=op.f("ck_inventory_codes_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_codes")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_inventory_codes_fingerprint")),
    )
    with op.batch_alter_table("inventory_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inventory_codes_claim",
            ["sku_id", "expires_on", "id"],
            unique=False,
            postgresql_where=sa.text("status = 'available'"),
            sqlite_where=sa.text("status = 'available'"),
        )
        batch_op.create_index(
            "ix_inventory_codes_order",
            ["order_id"],
            unique=False,
            postgresql_where=sa.text("order_id IS NOT NULL"),
            sqlite_where=sa.text("order_id IS NOT NULL"),
        )
        batch_op.create_index("ix_inventory_codes_stock", ["sku_id", "warehouse_id", "status"], unique=False)

    op.create_table(
        "inventory_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("start_serial", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("end_serial", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.CheckConstraint(
            "start_serial >= 0 AND end_serial >= start_serial", name=op.f("ck_inventory_segments_range_valid")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["inventory_batches.id"],
            name=op.f("fk_inventory_segments_batch_id_inventory_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_segments")),
        sa.UniqueConstraint("batch_id", name=op.f("uq_inventory_segments_batch_id")),
    )
    with op.batch_alter_table("inventory_segments", schema=None) as batch_op:
        batch_op.create_index("ix_inventory_segments_prefix", ["prefix", "width"], unique=False)

    op.create_table(
        "inventory_segment_ranges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("first_serial", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_serial", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("hold_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sold_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('available', 'reserved', 'sold', 'redeemed', 'voided')",
            name=op.f("ck_inventory_segment_ranges_status_known"),
        ),
        sa.CheckConstraint("last_serial >= first_serial", name=op.f("ck_inventory_segment_ranges_range_valid")),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["inventory_segments.id"],
            name=op.f("fk_inventory_segment_ranges_segment_id_inventory_segments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_segment_ranges")),
    )
    with op.batch_alter_table("inventory_segment_ranges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inventory_segment_ranges_claim",
            ["sku_id", "expires_on", "id"],
            unique=False,
            postgresql_where=sa.text("status = 'available'"),
            sqlite_where=sa.text("status = 'available'"),
        )
        batch_op.create_index(
            "ix_inventory_segment_ranges_order",
            ["order_id"],
            unique=False,
            postgresql_where=sa.text("order_id IS NOT NULL"),
            sqlite_where=sa.text("order_id IS NOT NULL"),
        )
        batch_op.create_index(batch_op.f("ix_inventory_segment_ranges_segment_id"), ["segment_id"], unique=False)
        batch_op.create_index("ix_inventory_segment_ranges_stock", ["sku_id", "warehouse_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inventory_segment_ranges", schema=None) as batch_op:
        batch_op.drop_index("ix_inventory_segment_ranges_stock")
        batch_op.drop_index(batch_op.f("ix_inventory_segment_ranges_segment_id"))
        batch_op.drop_index("ix_inventory_segment_ranges_order")
        batch_op.drop_index(
            "ix_inventory_segment_ranges_claim",
            postgresql_where=sa.text("status = 'available'"),
            sqlite_where=sa.text("status = 'available'"),
        )

    op.drop_table("inventory_segment_ranges")
    with op.batch_alter_table("inventory_segments", schema=None) as batch_op:
        batch_op.drop_index("ix_inventory_segments_prefix")

    op.drop_table("inventory_segments")
    with op.batch_alter_table("inventory_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_inventory_codes_stock")
        batch_op.drop_index("ix_inventory_codes_order")
        batch_op.drop_index(
            "ix_inventory_codes_claim",
            postgresql_where=sa.text("status = 'available'"),
            sqlite_where=sa.text("status = 'available'"),
        )

    op.drop_table("inventory_codes")
    with op.batch_alter_table("inventory_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inventory_batches_sku_id"))

    op.drop_table("inventory_batches")
    with op.batch_alter_table("catalog_skus", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_skus_product_id"))

    op.drop_table("catalog_skus")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_order_id"))

    op.drop_table("payments")
    op.drop_table("payment_callbacks")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_events_due_at"))

    op.drop_table("outbox_events")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_status_expires")
        batch_op.drop_index(batch_op.f("ix_orders_sku_id"))

    op.drop_table("orders")
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_events_order_id"))

    op.drop_table("order_events")
    with op.batch_alter_table("inventory_reveals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inventory_reveals_order_id"))

    op.drop_table("inventory_reveals")
    op.drop_table("kit_keys")
    op.drop_table("inventory_warehouses")
    op.drop_table("catalog_products")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_at"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_action"))

    op.drop_table("audit_entries")
