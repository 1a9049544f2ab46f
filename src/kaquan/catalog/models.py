from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, UTCDateTime

PRODUCT_KINDS = ("membership", "game_points", "virtual_item", "voucher", "gift_card")
STOCK_KINDS = ("codes", "segment")


class Product(Base):
    __tablename__ = "catalog_products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime(), nullable=False)
    # What the shop's product page shows besides the description (zh-CN as the operator writes it).
    category: Mapped[str] = mapped_column(String(64), default="", server_default="", index=True)
    usage: Mapped[str] = mapped_column(Text, default="", server_default="")
    validity: Mapped[str] = mapped_column(String(200), default="", server_default="")
    featured: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    sort_order: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When a buyer gets the code, as the product page says it; empty: the shop's standard words (automatic).
    delivery_promise: Mapped[str] = mapped_column(String(200), default="", server_default="")


class Category(Base):
    """A shop category an operator keeps, so it exists (and can be renamed) apart from the products naming it."""

    __tablename__ = "catalog_categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at = mapped_column(UTCDateTime(), nullable=False)


class ProductImage(Base):
    """A picture the operator uploaded for a product; its pixels live in `ProductImageFile`, one per width."""

    __tablename__ = "catalog_product_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("catalog_products.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at = mapped_column(UTCDateTime(), nullable=False)


class ProductImageFile(Base):
    """One re-encoded rendition of an image (JPEG, metadata stripped), as served to browsers."""

    __tablename__ = "catalog_product_image_files"

    image_id: Mapped[int] = mapped_column(ForeignKey("catalog_product_images.id"), primary_key=True)
    width: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Sku(Base):
    __tablename__ = "catalog_skus"
    __table_args__ = (
        CheckConstraint("price_minor >= 0 AND cost_minor >= 0 AND face_value_minor >= 0", name="money_not_negative"),
        CheckConstraint("max_per_order >= 1", name="max_per_order_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("catalog_products.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    face_value_minor: Mapped[int] = mapped_column(Integer)
    price_minor: Mapped[int] = mapped_column(Integer)
    cost_minor: Mapped[int] = mapped_column(Integer)
    stock_kind: Mapped[str] = mapped_column(String(16), default="codes")
    code_rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    encrypt_card_no: Mapped[bool] = mapped_column(Boolean, default=False)
    max_per_order: Mapped[int] = mapped_column(Integer, default=10)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime(), nullable=False)
