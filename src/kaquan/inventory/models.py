"""Inventory tables. Codes and segment ranges carry an opaque `order_id`: a holder, not an order."""

from datetime import date

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime, partial_index

CODE_STATUSES = ("available", "reserved", "sold", "redeemed", "voided")
_STATUS_CHECK = "status IN ('available', 'reserved', 'sold', 'redeemed', 'voided')"
_AVAILABLE = "status = 'available'"
WAREHOUSE_KINDS = ("own", "consignment")
_WAREHOUSE_KIND_CHECK = "kind IN ('own', 'consignment')"


class Warehouse(Base):
    """A place stock lives: one of our own, or consignment stock held at an agent (寄售)."""

    __tablename__ = "inventory_warehouses"
    __table_args__ = (CheckConstraint(_WAREHOUSE_KIND_CHECK, name="kind_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="own", server_default="own")
    # Who holds a consignment warehouse's stock (an agent, a store); none for our own warehouses.
    consignee: Mapped[str | None] = mapped_column(String(200))


class Batch(Base):
    """One import: a file of unique codes, or one segment (号段)."""

    __tablename__ = "inventory_batches"
    __table_args__ = (
        CheckConstraint("kind IN ('codes', 'segment')", name="kind_known"),
        CheckConstraint("unit_cost_minor >= 0", name="unit_cost_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("catalog_skus.id"), index=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("inventory_warehouses.id"))
    kind: Mapped[str] = mapped_column(String(16))
    supplier: Mapped[str] = mapped_column(String(200), default="")
    unit_cost_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    expires_on: Mapped[date | None] = mapped_column(Date)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    quantity: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(300), default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(UTCDateTime(), nullable=False)
    # Set when the batch leaked: its unsold codes are voided, and codes released later follow them.
    quarantined_at = mapped_column(UTCDateTime(), nullable=True)


class Code(Base):
    """One unique code (唯一码): the secret sealed under its batch key; the fingerprint unique forever."""

    __tablename__ = "inventory_codes"
    __table_args__ = (
        CheckConstraint(_STATUS_CHECK, name="status_known"),
        # The claim index covers available rows only: a claim never walks the sold history. It leads
        # with the warehouse so a claim reads one warehouse's codes already in FEFO order, never sorting.
        partial_index(
            "ix_inventory_codes_claim",
            "sku_id",
            "warehouse_id",
            "expires_on",
            "id",
            where=_AVAILABLE,
        ),
        Index("ix_inventory_codes_stock", "sku_id", "warehouse_id", "status"),
        partial_index(
            "ix_inventory_codes_order",
            "order_id",
            where="order_id IS NOT NULL",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key on purpose: codes are only ever created by the import, in the
    # batch's own transaction, and a per-row referential check halves COPY speed.
    batch_id: Mapped[int] = mapped_column(Integer)
    sku_id: Mapped[int] = mapped_column(Integer)
    warehouse_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="available")
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    card_no: Mapped[str | None] = mapped_column(String(128))
    card_no_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    expires_on: Mapped[date | None] = mapped_column(Date)
    order_id: Mapped[int | None] = mapped_column(BigId)
    hold_until = mapped_column(UTCDateTime(), nullable=True)
    sold_at = mapped_column(UTCDateTime(), nullable=True)


class Reveal(Base):
    """A plaintext reveal of an order's codes: who saw them, when and why (invariant 6)."""

    __tablename__ = "inventory_reveals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at = mapped_column(UTCDateTime(), nullable=False)
    order_id: Mapped[int] = mapped_column(BigId, index=True)
    units: Mapped[int] = mapped_column(Integer)
    viewer: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(64))


class Segment(Base):
    """A contiguous serial range (号段) held as one record: prefix + serial zero-padded to `width`."""

    __tablename__ = "inventory_segments"
    __table_args__ = (
        CheckConstraint("start_serial >= 0 AND end_serial >= start_serial", name="range_valid"),
        Index("ix_inventory_segments_prefix", "prefix", "width"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("inventory_batches.id"), unique=True)
    sku_id: Mapped[int] = mapped_column(Integer)
    prefix: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    start_serial: Mapped[int] = mapped_column(BigId)
    end_serial: Mapped[int] = mapped_column(BigId)


class SegmentRange(Base):
    """A piece of a segment in one state. The pieces of a segment partition it exactly."""

    __tablename__ = "inventory_segment_ranges"
    __table_args__ = (
        CheckConstraint(_STATUS_CHECK, name="status_known"),
        CheckConstraint("last_serial >= first_serial", name="range_valid"),
        partial_index(
            "ix_inventory_segment_ranges_claim",
            "sku_id",
            "warehouse_id",
            "expires_on",
            "id",
            where=_AVAILABLE,
        ),
        partial_index(
            "ix_inventory_segment_ranges_order",
            "order_id",
            where="order_id IS NOT NULL",
        ),
        Index("ix_inventory_segment_ranges_stock", "sku_id", "warehouse_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("inventory_segments.id"), index=True)
    sku_id: Mapped[int] = mapped_column(Integer)
    warehouse_id: Mapped[int] = mapped_column(Integer)
    first_serial: Mapped[int] = mapped_column(BigId)
    last_serial: Mapped[int] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(16), default="available")
    expires_on: Mapped[date | None] = mapped_column(Date)
    order_id: Mapped[int | None] = mapped_column(BigId)
    hold_until = mapped_column(UTCDateTime(), nullable=True)
    sold_at = mapped_column(UTCDateTime(), nullable=True)


class RefillRule(Base):
    """When `warehouse_id` holds fewer than `threshold` available units of a SKU, move up to
    `refill_units` from `source_warehouse_id`. Rules are disabled, never deleted: the first rule
    of a (SKU, warehouse) stays the row every refill of that warehouse locks."""

    __tablename__ = "inventory_refill_rules"
    __table_args__ = (
        UniqueConstraint("sku_id", "warehouse_id", "source_warehouse_id", name="uq_inventory_refill_rules_route"),
        CheckConstraint("warehouse_id <> source_warehouse_id", name="distinct_warehouses"),
        CheckConstraint("threshold > 0", name="threshold_positive"),
        CheckConstraint("refill_units > 0", name="refill_units_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("catalog_skus.id"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("inventory_warehouses.id"))
    threshold: Mapped[int] = mapped_column(Integer)
    source_warehouse_id: Mapped[int] = mapped_column(
        ForeignKey("inventory_warehouses.id", name="fk_inventory_refill_rules_source_warehouse")
    )
    refill_units: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set while the warehouse stays under the threshold after a refill: the alert went out once.
    low_since = mapped_column(UTCDateTime(), nullable=True)


class StockTransfer(Base):
    """Available units of a SKU moved between warehouses: by an admin, or by a refill rule (`rule_id`).

    Stock per warehouse counts these: imported = batches into it + transfers in - transfers out.
    """

    __tablename__ = "inventory_stock_transfers"
    __table_args__ = (
        CheckConstraint("from_warehouse_id <> to_warehouse_id", name="distinct_warehouses"),
        CheckConstraint("units > 0", name="units_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("catalog_skus.id"), index=True)
    from_warehouse_id: Mapped[int] = mapped_column(
        ForeignKey("inventory_warehouses.id", name="fk_inventory_stock_transfers_from_warehouse")
    )
    to_warehouse_id: Mapped[int] = mapped_column(
        ForeignKey("inventory_warehouses.id", name="fk_inventory_stock_transfers_to_warehouse")
    )
    units: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(128))
    at = mapped_column(UTCDateTime(), nullable=False)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("inventory_refill_rules.id"))
