"""Marketplace stores: orders a marketplace collected the money for, delivered back as codes.

Each store is the channel `marketplace:<store>`, with its own price list (the
tier "" prices) and fee rate. Orders arrive two ways: the store's system pushes
them one at a time over HTTP, signed exactly like the open API (KQ1-HMAC-SHA256;
`X-Kq-Key` is the store code and the secret is the store's push secret), or the
operator imports the marketplace's order export (CSV, `order_files`) and
uploads the deliveries file kaquan writes back. Both ways share one idempotency key, the
marketplace order id within the store: the same id with the same request is
delivered again with the same codes, with a different request it is a conflict.

The marketplace has the buyer's money already, so an order is created
delivered and booked (`booking.channel_sale`: a receivable from the
marketplace net of its fee, the fee, the sale) in the transaction that hands
out its codes. Their cost of goods is booked by the worker from an outbox event
written in that transaction (`accounting.book_deliveries_later`).

A store's push secret is the base64url text of its named key
`marketplace:<store>`: shown when the store is added, shown again only by an
audited reveal, replaced by rotation (the old secret stops working at once).
"""

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting, ledger
from kaquan.audit import service as audit
from kaquan.channels import booking
from kaquan.channels import pricing as channels
from kaquan.channels.agents import code_encryption, request_signing
from kaquan.channels.agents.authentication import NonceStore
from kaquan.channels.errors import InvalidSignature, NonceReused, SkuNotAvailableForAgent
from kaquan.channels.models import Channel
from kaquan.channels.schemas import MarketplaceOrderOut
from kaquan.inventory import DeliveredCode, Vault, Viewer, codes_of_orders
from kaquan.kit import clock, named_keys
from kaquan.kit.crypto import KeyRing, same_digest
from kaquan.kit.db import Database, serialize_on
from kaquan.kit.errors import BadInput, Conflict, Forbidden, IdempotencyConflict, NotFound, Unauthorized
from kaquan.kit.keys import named_key
from kaquan.orders import batch_placing
from kaquan.orders import service as orders
from kaquan.orders.errors import check_quantity
from kaquan.orders.service import Order

CHANNEL_PREFIX = "marketplace:"
# Orders name their channel in 32 characters: "marketplace:" leaves 20 for the store.
STORE_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,19}")
ORDER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_BUYER = 200
MAX_NAME = 200
PUSH_REASON = "marketplace push delivery"
_IN_CHUNK = 500
# The fee of an order is read back from the ledger, among the postings made this soon after the order.
_BOOKING_WINDOW = timedelta(minutes=10)

Outcome = Literal["placed", "replayed", "conflict", "out_of_stock"]


# --- errors -------------------------------------------------------------------------------------


class StoreNotFound(NotFound):
    code = "marketplace_store_not_found"

    def __init__(self, store: str) -> None:
        super().__init__(f"no marketplace store {store!r}; add it with `kaquan channel marketplace add`", store=store)


class StoreExists(Conflict):
    code = "marketplace_store_exists"

    def __init__(self, store: str) -> None:
        super().__init__(
            f"marketplace store {store!r} exists already; reveal or rotate its push secret instead", store=store
        )


class NoPushSecret(NotFound):
    code = "marketplace_secret_not_found"

    def __init__(self, store: str) -> None:
        super().__init__(f"marketplace store {store!r} has no push secret; rotate to issue one", store=store)


class UnknownStore(Unauthorized):
    """No store with a push secret is called this (the same code as the open API's unknown key)."""

    code = "unknown_key"

    def __init__(self, store: str) -> None:
        super().__init__(f"no marketplace store {store!r} takes pushed orders", store=store)


class StoreInactive(Forbidden):
    code = "store_inactive"

    def __init__(self, store: str) -> None:
        super().__init__(f"marketplace store {store!r} is switched off; ask the merchant", store=store)


class SkuNotListed(NotFound):
    """The SKU does not exist or is not on the store's price list (the two are not told apart)."""

    code = "sku_not_listed"

    def __init__(self, store: str, sku: str) -> None:
        super().__init__(f"SKU {sku} is not on the price list of store {store}", store=store, sku=sku)


class StoreOutOfStock(Conflict):
    """Not enough codes (or not enough of the store's quota) for the whole order: nothing was placed."""

    code = "out_of_stock"

    def __init__(self, sku: str, wanted: int) -> None:
        super().__init__(
            f"SKU {sku}: not enough stock for {wanted} unit(s); nothing was placed", sku=sku, wanted=wanted
        )


# --- stores -------------------------------------------------------------------------------------


def channel_of(store: str) -> str:
    return CHANNEL_PREFIX + store


def _secret_text(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def check_store_code(store: str) -> None:
    if not STORE_CODE.fullmatch(store):
        raise BadInput("a store code is 1-20 characters of a-z 0-9 _ -, starting with a letter or digit", field="store")


async def add_store(
    db: Database, session: AsyncSession, keyring: KeyRing, store: str, *, name: str, fee_rate_bp: int, actor: str
) -> str:
    """Open the store's channel with its name and fee, and issue its push secret (returned this once)."""
    check_store_code(store)
    if not 1 <= len(name) <= MAX_NAME:
        raise BadInput(f"a store name has 1 to {MAX_NAME} characters", field="name")
    if await named_keys.stored_key(session, keyring, channel_of(store)) is not None:
        raise StoreExists(store)
    channel = await channels.configure(db, session, channel_of(store), actor=actor, fee_rate_bp=fee_rate_bp, name=name)
    secret = _secret_text(await named_key(db, session, keyring, channel_of(store)))
    await audit.record(
        session, actor, "marketplace.store_added", target=channel.code, after={"name": name, "fee_rate_bp": fee_rate_bp}
    )
    return secret


async def get_store(session: AsyncSession, store: str) -> Channel:
    """The store's channel (a store exists once its channel does, with or without a push secret)."""
    if not STORE_CODE.fullmatch(store):
        raise StoreNotFound(store)
    try:
        return await channels.get_channel(session, channel_of(store))
    except channels.ChannelNotFound:
        raise StoreNotFound(store) from None


async def list_stores(session: AsyncSession) -> list[Channel]:
    return [channel for channel in await channels.list_channels(session) if channel.kind == "marketplace"]


async def reveal_secret(db: Database, session: AsyncSession, keyring: KeyRing, store: str, *, actor: str) -> str:
    """The store's current push secret, for an operator who asks explicitly (audited)."""
    channel = await get_store(session, store)
    key = await named_keys.stored_key(session, keyring, channel_of(store))
    if key is None:
        raise NoPushSecret(store)
    await audit.record(session, actor, "marketplace.secret_revealed", target=channel.code)
    return _secret_text(key)


async def rotate_secret(db: Database, session: AsyncSession, keyring: KeyRing, store: str, *, actor: str) -> str:
    """Replace the store's push secret (or issue its first); the old one stops working when this commits."""
    channel = await get_store(session, store)
    await session.execute(db.lock(select(Channel.id).where(Channel.id == channel.id)))  # one rotation at a time
    replaced = await named_keys.retire_key(session, channel_of(store))
    secret = _secret_text(await named_key(db, session, keyring, channel_of(store)))
    await audit.record(session, actor, "marketplace.secret_rotated", target=channel.code, after={"replaced": replaced})
    return secret


async def selling_store(session: AsyncSession, store: str) -> Channel:
    """The store's channel, refused when the merchant has switched it off."""
    channel = await get_store(session, store)
    if not channel.active:
        raise StoreInactive(store)
    return channel


# --- signed pushes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCaller:
    """The store behind a verified push, and its secret (its codes are encrypted under it, key id = store)."""

    store: str
    secret: str


class StoreVerifier:
    """Checks a pushed request like the open API checks an agent's: cheapest first, the nonce spent last."""

    def __init__(self, db: Database, keyring: KeyRing, nonces: NonceStore, *, window_s: int) -> None:
        self._db = db
        self._keyring = keyring
        self._nonces = nonces
        self._window_s = window_s

    async def authenticate(
        self, store: str, *, method: str, path: str, raw_query: str, body: bytes, headers: Mapping[str, str]
    ) -> StoreCaller:
        key_id = headers.get(request_signing.KEY_HEADER.lower(), "")
        timestamp = headers.get(request_signing.TIMESTAMP_HEADER.lower(), "")
        nonce = headers.get(request_signing.NONCE_HEADER.lower(), "")
        offered = headers.get(request_signing.SIGNATURE_HEADER.lower(), "")
        named = (
            (request_signing.KEY_HEADER, key_id),
            (request_signing.TIMESTAMP_HEADER, timestamp),
            (request_signing.NONCE_HEADER, nonce),
            (request_signing.SIGNATURE_HEADER, offered),
        )
        missing = [name for name, value in named if not value]
        if missing:
            raise InvalidSignature(f"the {', '.join(missing)} header(s) are missing")
        if not request_signing.NONCE_PATTERN.fullmatch(nonce):
            raise InvalidSignature(f"{request_signing.NONCE_HEADER} must be 16-64 characters of A-Z a-z 0-9 _ -")
        request_signing.check_timestamp(timestamp, clock.now(), self._window_s)
        if key_id != store:
            raise InvalidSignature(f"{request_signing.KEY_HEADER} must be the store code in the path")
        found = await self._store(store)
        if found is None:
            raise UnknownStore(store)
        secret, active = found
        canonical = request_signing.canonical_string(method, path, raw_query, body, timestamp, nonce)
        if not request_signing.signature_matches(secret, canonical, offered):
            raise InvalidSignature()
        if not active:
            raise StoreInactive(store)
        if not await self._nonces.first_use(channel_of(store), nonce, 2 * self._window_s):
            raise NonceReused()
        return StoreCaller(store, secret)

    async def _store(self, store: str) -> tuple[str, bool] | None:
        if not STORE_CODE.fullmatch(store):
            return None
        async with self._db.read() as session:
            key = await named_keys.stored_key(session, self._keyring, channel_of(store))
            if key is None:
                return None
            try:
                channel = await channels.get_channel(session, channel_of(store))
            except channels.ChannelNotFound:
                return None
            return _secret_text(key), channel.active


# --- orders -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketplaceOrderRequest:
    marketplace_order_id: str
    sku: str
    quantity: int
    buyer: str = ""

    def fingerprint(self) -> bytes:
        body = {"sku": self.sku, "quantity": self.quantity, "buyer": self.buyer}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()


def check_request(request: MarketplaceOrderRequest, max_per_order: int) -> None:
    if not ORDER_ID.fullmatch(request.marketplace_order_id):
        raise BadInput("marketplace_order_id is 1-64 characters of A-Z a-z 0-9 _ . : -", field="marketplace_order_id")
    if not request.sku:
        raise BadInput("sku names the SKU code", field="sku")
    check_quantity(request.quantity, max_per_order)
    if len(request.buyer) > MAX_BUYER or not request.buyer.isprintable():
        raise BadInput(f"buyer is at most {MAX_BUYER} printable characters", field="buyer")


@dataclass(frozen=True)
class OrderLine:
    """One order to place: a pushed request (line 0) or a line of an order file."""

    line_no: int
    request: MarketplaceOrderRequest


@dataclass(frozen=True)
class Delivered:
    """What became of one line: its order (placed now or before) and its codes, or why there is none."""

    line: OrderLine
    outcome: Outcome
    order_id: int | None = None
    order_no: str | None = None
    status: str | None = None
    codes: tuple[DeliveredCode, ...] = ()


async def known_orders(session: AsyncSession, store: str, ids: Sequence[str]) -> dict[str, batch_placing.KnownOrder]:
    """Orders of this store already placed under these marketplace order ids."""
    found: dict[str, batch_placing.KnownOrder] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), _IN_CHUNK):
        found.update(
            await batch_placing.known_keys(session, channel_of(store), store, unique[start : start + _IN_CHUNK])
        )
    return found


def _replay(line: OrderLine, earlier: batch_placing.KnownOrder) -> Delivered:
    outcome: Outcome = "replayed" if same_digest(earlier.request_hash, line.request.fingerprint()) else "conflict"
    return Delivered(line, outcome, earlier.order_id, earlier.number, earlier.status)


async def listed_price(session: AsyncSession, channel: Channel, store: str, sku: str) -> channels.PricedSku:
    try:
        return await channels.price_for(session, channel, "", sku)
    except SkuNotAvailableForAgent:
        raise SkuNotListed(store, sku) from None


async def deliver_batch(
    db: Database,
    session: AsyncSession,
    vault: Vault,
    store: str,
    sku: str,
    lines: Sequence[OrderLine],
    viewer: Viewer,
) -> list[Delivered]:
    """Place (or replay) orders of one SKU in the caller's transaction and open the codes of every delivered one.

    New orders are placed whole or not at all (in the order given, within the
    store's quota) and booked in one ledger post; known ids are answered from
    their earlier orders, even if the SKU has left the price list since.
    """
    channel = await selling_store(session, store)
    ids = [line.request.marketplace_order_id for line in lines]
    for marketplace_order_id in sorted(set(ids)):
        # A copy of an order still in flight waits for it and replays it. Without this, on PostgreSQL it would
        # find the first one's codes locked (SKIP LOCKED) and could answer out_of_stock for an order delivered.
        await serialize_on(session, f"{channel.code}/{marketplace_order_id}")
    known = await known_orders(session, store, ids)
    answers: dict[int, Delivered] = {}
    fresh: list[tuple[int, OrderLine]] = []
    for index, line in enumerate(lines):
        earlier = known.get(line.request.marketplace_order_id)
        if earlier is None:
            fresh.append((index, line))
        else:
            answers[index] = _replay(line, earlier)
    if fresh:
        answers.update(
            await _place(db, session, channel, store, await listed_price(session, channel, store, sku), fresh)
        )
    delivered = [a.order_id for a in answers.values() if a.order_id is not None and a.outcome != "conflict"]
    opened = await codes_of_orders(session, vault, delivered, viewer) if delivered else {}
    return [_with_codes(answers[index], opened) for index in range(len(lines))]


def _with_codes(answer: Delivered, opened: dict[int, list[DeliveredCode]]) -> Delivered:
    if answer.outcome == "conflict" or answer.order_id is None:
        return answer
    return replace(answer, codes=tuple(opened.get(answer.order_id, [])))


async def _place(
    db: Database,
    session: AsyncSession,
    channel: Channel,
    store: str,
    priced: channels.PricedSku,
    fresh: list[tuple[int, OrderLine]],
) -> dict[int, Delivered]:
    room = await channels.quota_room(db, session, channel, priced.sku)
    answers: dict[int, Delivered] = {}
    wanted: list[tuple[int, OrderLine]] = []
    for index, line in fresh:
        if room is not None and line.request.quantity > room:
            answers[index] = Delivered(line, "out_of_stock")
            continue
        wanted.append((index, line))
        if room is not None:
            room -= line.request.quantity
    if not wanted:
        return answers
    placed = await batch_placing.place_many(
        db,
        session,
        priced.sku,
        [
            batch_placing.BulkOrder(
                line.request.marketplace_order_id,
                line.request.quantity,
                line.request.fingerprint(),
                contact=line.request.buyer,
            )
            for _, line in wanted
        ],
        channel=channel.code,
        source=store,
        unit_price_minor=priced.price_minor,
        currency=priced.currency,
        status="delivered",
        warehouses=await channels.warehouse_order(session, channel),
    )
    transfers: list[ledger.TransferSpec] = []
    delivered: list[int] = []
    for (index, line), result in zip(wanted, placed, strict=True):
        if result.outcome == "placed" and result.number is not None and result.order_id is not None:
            total = result.quantity * priced.price_minor
            transfers.append(await booking.channel_sale(db, session, channel, result.number, total, priced.currency))
            delivered.append(result.order_id)
        answers[index] = Delivered(line, result.outcome, result.order_id, result.number, result.status)
    if transfers:
        await ledger.post_many(db, session, transfers, actor=channel.code)
    await accounting.book_deliveries_later(session, delivered)  # by the worker, off the stores' path
    return answers


async def booked_fee(session: AsyncSession, channel_code: str, order: Order) -> int:
    """The fee booked for an order, read back from the ledger: a replay shows what was charged, whatever the
    store's fee rate is now. 0 when the order was booked without a fee."""
    account = await ledger.account_by_code(session, f"fees:{channel_code}:{order.currency}")  # booking's naming
    if account is None:
        return 0
    reference = f"order:{order.number}"
    after: int | None = None
    while True:
        page = await ledger.entries(
            session,
            account.id,
            since=order.created_at,
            until=order.created_at + _BOOKING_WINDOW,
            after_id=after,
            limit=ledger.MAX_PAGE,
        )
        hit = next((entry.amount_minor for entry in page if entry.reference == reference), None)
        if hit is not None:
            return hit
        if len(page) < ledger.MAX_PAGE:
            return 0
        after = page[-1].posting_id


@dataclass(frozen=True)
class PushedOrder:
    order: Order
    sku_code: str
    created: bool
    fee_minor: int
    codes: tuple[DeliveredCode, ...]


def order_out(pushed: PushedOrder, caller: StoreCaller) -> MarketplaceOrderOut:
    """A pushed order as the store sees it, its codes encrypted for the store's push secret."""
    order = pushed.order
    key = code_encryption.code_key(caller.secret, caller.store) if pushed.codes else b""
    return MarketplaceOrderOut(
        order_no=order.number,
        marketplace_order_id=order.idempotency_key,
        status=order.status,
        sku=pushed.sku_code,
        quantity=order.quantity,
        unit_price_minor=order.unit_price_minor,
        total_minor=order.total_minor,
        fee_minor=pushed.fee_minor,
        currency=order.currency,
        codes=code_encryption.encrypt_codes(key, pushed.codes, order.number),
    )


async def push_order(
    db: Database,
    session: AsyncSession,
    vault: Vault,
    caller: StoreCaller,
    request: MarketplaceOrderRequest,
    *,
    max_per_order: int,
    ip: str | None = None,
) -> PushedOrder:
    """Place (or replay) one pushed order: delivered with its codes, or refused whole."""
    check_request(request, max_per_order)
    viewer = Viewer(channel_of(caller.store), PUSH_REASON, ip)
    [result] = await deliver_batch(db, session, vault, caller.store, request.sku, [OrderLine(0, request)], viewer)
    if result.outcome == "conflict":
        raise IdempotencyConflict(
            "this marketplace_order_id was used for a different order",
            marketplace_order_id=request.marketplace_order_id,
        )
    if result.outcome == "out_of_stock" or result.order_id is None:
        raise StoreOutOfStock(request.sku, request.quantity)
    order = await orders.by_id(session, result.order_id)
    sku = await orders.sku_of(session, order)
    fee = await booked_fee(session, channel_of(caller.store), order)
    return PushedOrder(order, sku.code, result.outcome == "placed", fee, result.codes)
