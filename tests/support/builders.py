"""Test builders: a SKU with codes, a segment SKU, a buyer's order, in as few words as a test needs."""

import secrets
from dataclasses import dataclass
from typing import Literal

from kaquan.catalog import service as catalog
from kaquan.catalog.models import Sku
from kaquan.catalog.rules import CodeRule
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.inventory.delivery import Viewer
from kaquan.inventory.intake import importing, segments
from kaquan.inventory.intake.parsing import parse_code_file
from kaquan.inventory.levels import Stock, stock
from kaquan.runtime import Runtime

_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
TEST_CLIENT = "the-tests-own-client-token"  # one client for every order the builders place


def random_codes(count: int, length: int = 16) -> list[str]:
    return ["".join(secrets.choice(_ALNUM) for _ in range(length)) for _ in range(count)]


@dataclass(frozen=True)
class GivenSku:
    id: int
    code: str
    product_id: int = 0


async def given_sku(
    rt: Runtime,
    *,
    code: str | None = None,
    price_minor: int = 1990,
    stock_kind: Literal["codes", "segment"] = "codes",
    rule: CodeRule | None = None,
    max_per_order: int = 10,
    encrypt_card_no: bool = False,
) -> GivenSku:
    code = code or f"SKU-{secrets.token_hex(3).upper()}"
    async with rt.db.transaction() as session:
        product = await catalog.create_product(
            session, ProductCreate(name=f"Product {code}", kind="membership"), actor="test"
        )
        sku = await catalog.create_sku(
            session,
            SkuCreate(
                product_id=product.id,
                code=code,
                name=code,
                face_value_minor=price_minor,
                price_minor=price_minor,
                stock_kind=stock_kind,
                code_rule=rule or CodeRule(),
                max_per_order=max_per_order,
                encrypt_card_no=encrypt_card_no,
            ),
            actor="test",
        )
        return GivenSku(sku.id, sku.code, product.id)


async def given_codes(rt: Runtime, sku: GivenSku, codes: list[str], **meta: object) -> int:
    """Import `codes` (one per line) into `sku`; returns the batch id."""
    async with rt.db.transaction() as session:
        target: Sku = await catalog.get_sku(session, sku.id)
        result = await importing.import_codes(
            rt.db,
            session,
            rt.vault,
            target,
            parse_code_file("\n".join(codes).encode()),
            importing.BatchMeta(**meta),  # type: ignore[arg-type]
            actor="test",
        )
    assert result.batch_id is not None
    return result.batch_id


async def given_sku_with_codes(rt: Runtime, count: int, **sku_options: object) -> GivenSku:
    sku = await given_sku(rt, **sku_options)  # type: ignore[arg-type]
    await given_codes(rt, sku, random_codes(count))
    return sku


async def given_segment_sku(
    rt: Runtime, *, start: int, end: int, prefix: str = "GC", width: int = 8, max_per_order: int = 10_000
) -> GivenSku:
    sku = await given_sku(rt, stock_kind="segment", max_per_order=max_per_order)
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.id)
        await segments.add_segment(
            rt.db,
            session,
            target,
            prefix=prefix,
            width=width,
            start=start,
            end=end,
            meta=importing.BatchMeta(),
            actor="test",
        )
    return sku


async def stock_of(rt: Runtime, sku: GivenSku) -> Stock:
    async with rt.db.read() as session:
        rows = await stock(session, sku_id=sku.id)
    assert len(rows) == 1, rows
    return rows[0]


@dataclass(frozen=True)
class Bought:
    number: str
    lookup_secret: str
    status: str
    codes: tuple[str, ...] = ()
    serials: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def place_order(rt: Runtime, sku: GivenSku, quantity: int = 1, *, key: str | None = None) -> tuple[str, str, str]:
    """Place an unpaid order; returns (number, lookup secret, payment token)."""
    from kaquan.orders import service as orders
    from kaquan.payments import service as payments

    async with rt.db.transaction() as session:
        placed = await orders.place(
            rt.db,
            session,
            rt.order_keys,
            orders.OrderRequest(
                sku=sku.id, quantity=quantity, idempotency_key=key or secrets.token_hex(8), client_token=TEST_CLIENT
            ),
            max_per_order=rt.settings.max_per_order,
            hold_minutes=rt.settings.hold_minutes,
        )
        payment = await payments.start(session, rt.dev_gateway, placed.order)
        return placed.order.number, placed.lookup_secret, payment.token


async def pay(rt: Runtime, token: str) -> str:
    """Pay through the dev gateway exactly as its pay page does; returns the receipt's outcome."""
    from kaquan.payments import notifications
    from kaquan.payments import service as payments

    async with rt.db.read() as session:
        payment = await payments.by_token(session, token)
    headers, body = rt.dev_gateway.notification(token, payment.amount_minor, payment.currency, f"txn-{token}")
    receipt = await notifications.receive(rt.db, rt.dev_gateway, headers, body)
    return receipt.outcome


async def order_view(rt: Runtime, number: str, lookup_secret: str) -> Bought:
    from kaquan.orders import service as orders

    await orders.LookupGuard(rt.order_keys, rt.limiter, rt.settings.lookup_per_minute).verify(
        number, lookup_secret, client="test"
    )
    async with rt.db.transaction() as session:
        order = await orders.by_number(session, number)
        view = await orders.view(session, rt.vault, order, Viewer("buyer", "test"))
    serials = tuple(r.serial(n) for r in view.ranges for n in range(r.first, r.last + 1))
    return Bought(number, lookup_secret, order.status, tuple(c.secret for c in view.codes), serials)


async def buy(rt: Runtime, sku: GivenSku, quantity: int = 1) -> Bought:
    """A whole purchase: order, pay, read the delivered codes. Domain errors become `error`."""
    from kaquan.kit.errors import DomainError

    try:
        number, secret, token = await place_order(rt, sku, quantity)
        await pay(rt, token)
        return await order_view(rt, number, secret)
    except DomainError as exc:
        return Bought("", "", "", error=exc.code)
