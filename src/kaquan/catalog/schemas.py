from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kaquan.catalog.rules import CodeRule
from kaquan.kit.bounds import INT32_MAX, Id
from kaquan.kit.money import supported_currencies

ProductKind = Literal["membership", "game_points", "virtual_item", "voucher", "gift_card"]


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: ProductKind
    description: str = Field(default="", max_length=4000)
    category: str = Field(default="", max_length=64)
    usage: str = Field(default="", max_length=4000, description="how a buyer uses the code (使用说明)")
    validity: str = Field(default="", max_length=200, description="how long a code stays good, as buyers read it")
    delivery_promise: str = Field(default="", max_length=200, description="when a buyer gets the code; empty: at once")
    featured: bool = False
    sort_order: int = Field(default=0, ge=-1_000_000, le=1_000_000, description="lower comes first in the shop")


class ProductUpdate(BaseModel):
    """The fields to change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    category: str | None = Field(default=None, max_length=64)
    usage: str | None = Field(default=None, max_length=4000)
    validity: str | None = Field(default=None, max_length=200)
    delivery_promise: str | None = Field(default=None, max_length=200)
    featured: bool | None = None
    sort_order: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    active: bool | None = None


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    description: str
    category: str
    usage: str
    validity: str
    delivery_promise: str
    featured: bool
    sort_order: int
    active: bool
    created_at: datetime


class ProductImageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    product_id: int
    position: int
    width: int
    height: int


class SkuCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: Id
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(default="CNY", min_length=3, max_length=3)
    face_value_minor: int = Field(ge=0, le=INT32_MAX)
    price_minor: int = Field(ge=0, le=INT32_MAX)
    cost_minor: int = Field(default=0, ge=0, le=INT32_MAX)
    stock_kind: Literal["codes", "segment"] = "codes"
    code_rule: CodeRule = Field(default_factory=CodeRule)
    encrypt_card_no: bool = False
    max_per_order: int = Field(default=10, ge=1, le=100_000)

    @field_validator("code")
    @classmethod
    def _not_an_id(cls, value: str) -> str:
        # Every interface takes "a SKU code or id": a code of digits would be read as another SKU's id.
        if value.isdigit():
            raise ValueError("a SKU code cannot be digits only: it would read as a SKU id")
        return value

    @model_validator(mode="after")
    def _known_currency(self) -> "SkuCreate":
        if self.currency not in supported_currencies():
            raise ValueError(f"currency must be one of {', '.join(supported_currencies())}")
        return self


class SkuUpdate(BaseModel):
    """A SKU's fields an operator changes after creating it; those left out stay as they are.

    The code, currency, stock kind and code rule stay: codes, orders and batches already name them.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    price_minor: int | None = Field(default=None, ge=0, le=INT32_MAX)
    face_value_minor: int | None = Field(default=None, ge=0, le=INT32_MAX)
    cost_minor: int | None = Field(default=None, ge=0, le=INT32_MAX)
    max_per_order: int | None = Field(default=None, ge=1, le=100_000)
    active: bool | None = None


class CategoryName(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a category needs a name")
        return value


class SkuOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    product_id: int
    code: str
    name: str
    currency: str
    face_value_minor: int
    price_minor: int
    cost_minor: int
    stock_kind: str
    code_rule: CodeRule
    encrypt_card_no: bool
    max_per_order: int
    active: bool
