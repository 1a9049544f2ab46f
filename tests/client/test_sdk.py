"""The agent SDK against a fake kaquan that checks every request with the server's own signing code."""

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import kaquan.client
from kaquan.channels.agents import request_signing
from kaquan.channels.agents.code_encryption import code_key, encrypt_field
from kaquan.client import (
    AgentClient,
    ApiError,
    AsyncAgentClient,
    Balance,
    CallbackRejected,
    Code,
    LedgerEntry,
    Product,
    callback_order,
    verify_callback,
    wire,
)
from kaquan.client.models import entry_from
from kaquan.kit.errors import DomainError

KEY_ID = "kq_ak_3f9c2a7d1e0b4c55"
SECRET = "kq_sk_" + "s" * 43
Route = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "details": {}}}, headers=headers)


class FakeKaquan:
    """Refuses what the real open API refuses before routing (key, timestamp, nonce, signature), then answers."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[httpx.Request] = []
        self._nonces: set[str] = set()

    def on(self, method: str, path: str, route: Route) -> None:
        self.routes[(method, self.prefix + path)] = route

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        headers = request.headers
        if headers.get(request_signing.KEY_HEADER) != KEY_ID:
            return error(401, "unknown_key", "no such key")
        nonce, timestamp = headers[request_signing.NONCE_HEADER], headers[request_signing.TIMESTAMP_HEADER]
        try:
            request_signing.check_timestamp(timestamp, datetime.now(UTC), request_signing.TIMESTAMP_WINDOW_S)
        except DomainError as refused:
            return error(refused.status, refused.code, refused.message)
        if not request_signing.NONCE_PATTERN.fullmatch(nonce) or nonce in self._nonces:
            return error(401, "nonce_reused", "nonce")
        self._nonces.add(nonce)
        canonical = request_signing.canonical_string(request.method, path, query, request.content, timestamp, nonce)
        if not request_signing.signature_matches(SECRET, canonical, headers[request_signing.SIGNATURE_HEADER]):
            return error(401, "invalid_signature", "the signature does not match the request")
        return self.routes[(request.method, path)](request)


def order_json(
    order_no: str, out_order_no: str, *codes: tuple[str | None, str], key: bytes | None = None
) -> dict[str, Any]:
    """An order as the open API sends it, its code fields encrypted for KEY_ID/SECRET (or for `key`)."""
    key = key or code_key(SECRET, KEY_ID)
    return {
        "order_no": order_no,
        "out_order_no": out_order_no,
        "status": "delivered" if codes else "processing",
        "sku": "NETFLIX-1M",
        "requested_quantity": max(len(codes), 1),
        "quantity": max(len(codes), 1),
        "unit_price_minor": 3500,
        "total_minor": 3500 * max(len(codes), 1),
        "currency": "CNY",
        "created_at": "2026-11-25T08:00:00Z",
        "delivered_at": "2026-11-25T08:00:01Z" if codes else None,
        "codes": [
            {
                "card_no": None if card_no is None else encrypt_field(key, card_no, order_no),
                "secret": encrypt_field(key, secret, order_no),
                "expires_on": "2027-12-31",
            }
            for card_no, secret in codes
        ],
    }


@pytest.fixture
def fake() -> FakeKaquan:
    return FakeKaquan()


@pytest.fixture
def kq(fake: FakeKaquan) -> Iterator[AgentClient]:
    with AgentClient("http://kq.test", KEY_ID, SECRET, transport=fake.transport()) as client:
        yield client


PRODUCTS = {
    "products": [
        {
            "sku": "NETFLIX-1M",
            "name": "Netflix 1 month",
            "price_minor": 3500,
            "currency": "CNY",
            "in_stock": True,
            "available": 1000,
            "max_per_order": 10,
        }
    ]
}


def test_products_come_from_a_signed_get_without_a_body(fake: FakeKaquan, kq: AgentClient) -> None:
    fake.on("GET", "/open/v1/products", lambda request: httpx.Response(200, json=PRODUCTS))

    assert kq.products() == [Product("NETFLIX-1M", "Netflix 1 month", 3500, "CNY", True, 1000, 10)]
    assert fake.requests[0].content == b""


def test_an_order_is_signed_over_the_exact_body_sent_and_its_codes_arrive_decrypted(
    fake: FakeKaquan, kq: AgentClient
) -> None:
    def place(request: httpx.Request) -> httpx.Response:
        assert request.headers["Content-Type"] == "application/json"
        assert json.loads(request.content) == {
            "out_order_no": "A-1",
            "sku": "NETFLIX-1M",
            "quantity": 2,
            "mode": "async",
            "allow_partial": True,
        }
        order = order_json("2611250000000001", "A-1", ("CARD-1", "SECRET-1"), (None, "SECRET-2"))
        return httpx.Response(201, json={"order": order})

    fake.on("POST", "/open/v1/orders", place)

    order = kq.place_order("A-1", "NETFLIX-1M", 2, mode="async", allow_partial=True)

    assert (order.order_no, order.out_order_no, order.status, order.quantity) == (
        "2611250000000001",
        "A-1",
        "delivered",
        2,
    )
    assert order.created_at == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert order.codes == (
        Code("CARD-1", "SECRET-1", date(2027, 12, 31)),
        Code(None, "SECRET-2", date(2027, 12, 31)),
    )


def test_a_code_secret_never_shows_in_a_repr(fake: FakeKaquan, kq: AgentClient) -> None:
    order = order_json("2611250000000001", "A-1", ("CARD-1", "SECRET-1"))
    fake.on("GET", "/open/v1/orders/A-1", lambda request: httpx.Response(200, json={"order": order}))

    found = kq.order("A-1")

    assert "SECRET-1" not in repr(found)
    assert SECRET not in repr(kq.__dict__)


def test_every_request_gets_a_fresh_nonce_and_the_current_time(fake: FakeKaquan, kq: AgentClient) -> None:
    fake.on("GET", "/open/v1/products", lambda request: httpx.Response(200, json=PRODUCTS))

    for _ in range(20):
        kq.products()

    nonces = [request.headers[request_signing.NONCE_HEADER] for request in fake.requests]
    assert len(set(nonces)) == 20
    assert all(request_signing.NONCE_PATTERN.fullmatch(nonce) for nonce in nonces)
    for request in fake.requests:
        request_signing.check_timestamp(request.headers[request_signing.TIMESTAMP_HEADER], datetime.now(UTC), 5)


def test_the_fake_server_refuses_a_client_with_the_wrong_secret(fake: FakeKaquan) -> None:
    fake.on("GET", "/open/v1/products", lambda request: httpx.Response(200, json=PRODUCTS))
    with (
        AgentClient("http://kq.test", KEY_ID, "kq_sk_" + "t" * 43, transport=fake.transport()) as wrong,
        pytest.raises(ApiError) as refused,
    ):
        wrong.products()

    assert (refused.value.status, refused.value.code) == (401, "invalid_signature")


def test_a_path_prefix_in_the_base_url_is_part_of_the_signed_path() -> None:
    fake = FakeKaquan(prefix="/shop")
    fake.on("GET", "/open/v1/products", lambda request: httpx.Response(200, json=PRODUCTS))
    with AgentClient("http://kq.test/shop/", KEY_ID, SECRET, transport=fake.transport()) as kq:
        assert [product.sku for product in kq.products()] == ["NETFLIX-1M"]
    assert fake.requests[0].url.raw_path == b"/shop/open/v1/products"


@pytest.mark.parametrize(
    ("response", "status", "code", "message", "details"),
    [
        (error(409, "idempotency_conflict", "A-1 was used with another body"), 409, "idempotency_conflict",
         "A-1 was used with another body", {}),
        (httpx.Response(402, json={"error": {"code": "insufficient_balance", "message": "short",
                                             "details": {"available_minor": 100}}}),
         402, "insufficient_balance", "short", {"available_minor": 100}),
        (error(503, "busy", "try again", headers={"Retry-After": "2"}), 503, "busy", "try again", {"retry_after": 2}),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), 502, "http_error", "Bad Gateway", {}),
    ],
)  # fmt: skip
def test_error_answers_raise_api_error_with_the_body_code_message_and_details(
    fake: FakeKaquan,
    kq: AgentClient,
    response: httpx.Response,
    status: int,
    code: str,
    message: str,
    details: dict[str, object],
) -> None:
    fake.on("POST", "/open/v1/orders", lambda request: response)

    with pytest.raises(ApiError) as refused:
        kq.place_order("A-1", "NETFLIX-1M", 1)

    assert (refused.value.status, refused.value.code, refused.value.message) == (status, code, message)
    assert refused.value.details == details


def pages(key: str, items: list[list[dict[str, Any]]]) -> tuple[Route, list[dict[str, str]]]:
    """A route answering `items` page by page through cursors, and the query parameters of each request."""
    queries: list[dict[str, str]] = []

    def route(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        queries.append(query)
        number = int(query.get("cursor", "cursor-0").removeprefix("cursor-"))
        cursor = f"cursor-{number + 1}" if number + 1 < len(items) else None
        return httpx.Response(200, json={key: items[number], "next_cursor": cursor})

    return route, queries


def test_orders_follow_next_cursor_through_every_page_without_codes(fake: FakeKaquan, kq: AgentClient) -> None:
    listed = [order_json(f"26112500000000{n:02d}", f"A-{n}") for n in range(5)]
    for raw in listed:
        del raw["codes"]
    route, queries = pages("orders", [listed[:2], listed[2:4], listed[4:]])
    fake.on("GET", "/open/v1/orders", route)

    since, until = datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, 8, tzinfo=UTC)
    orders = list(kq.orders(since, until, limit=2))

    assert [order.out_order_no for order in orders] == [f"A-{n}" for n in range(5)]
    assert all(order.codes == () for order in orders)
    first = {"since": "2026-11-25T00:00:00Z", "until": "2026-11-26T08:00:00Z", "limit": "2"}
    assert queries == [first, {**first, "cursor": "cursor-1"}, {**first, "cursor": "cursor-2"}]
    assert fake.requests[0].url.query == b"limit=2&since=2026-11-25T00%3A00%3A00Z&until=2026-11-26T08%3A00%3A00Z"


def test_the_ledger_pages_too_with_optional_bounds(fake: FakeKaquan, kq: AgentClient) -> None:
    entry = {"id": 1, "at": "2026-11-24T10:00:00Z", "kind": "topup", "amount_minor": 500000, "reference": "B-1"}
    debit = {**entry, "id": 2, "kind": "order", "amount_minor": -3500, "memo": "A-1"}
    route, queries = pages("entries", [[entry], [debit]])
    fake.on("GET", "/open/v1/ledger", route)

    entries = list(kq.ledger())

    assert entries == [
        LedgerEntry(1, datetime(2026, 11, 24, 10, tzinfo=UTC), "topup", 500000, "B-1", ""),
        LedgerEntry(2, datetime(2026, 11, 24, 10, tzinfo=UTC), "order", -3500, "B-1", "A-1"),
    ]
    assert queries == [{}, {"cursor": "cursor-1"}]


def test_a_naive_datetime_is_refused_before_anything_is_sent(fake: FakeKaquan, kq: AgentClient) -> None:
    with pytest.raises(ValueError, match="aware"):
        list(kq.orders(datetime(2026, 11, 25), datetime(2026, 11, 26, tzinfo=UTC)))  # noqa: DTZ001
    assert fake.requests == []


def test_balance(fake: FakeKaquan, kq: AgentClient) -> None:
    body = {"currency": "CNY", "balance_minor": -500, "credit_limit_minor": 10000, "available_minor": 9500}
    fake.on("GET", "/open/v1/balance", lambda request: httpx.Response(200, json=body))

    assert kq.balance() == Balance("CNY", -500, 10000, 9500)


STATEMENT = {
    "id": 7,
    "counterparty": "agent:acme",
    "status": "confirmed",
    "currency": "CNY",
    "first_day": "2026-11-25",
    "last_day": "2026-11-25",
    "period_start": "2026-11-24T16:00:00Z",
    "period_end": "2026-11-25T16:00:00Z",
    "figures": {"opening": 500000, "sales": -7000, "closing": 493000},
    "created_at": "2026-11-26T01:00:00Z",
    "confirmed_at": "2026-11-26T02:00:00Z",
    "lines": None,
}


def test_statements_are_read_and_downloaded_by_signed_gets(fake: FakeKaquan, kq: AgentClient) -> None:
    line = {
        "at": "2026-11-25T08:00:00Z",
        "kind": "order",
        "reference": "2611250384017265",
        "order_no": "2611250384017265",
        "gross_minor": -7000,
        "fee_minor": 0,
        "amount_minor": -7000,
        "in_period": True,
        "settled": True,
    }
    fake.on("GET", "/open/v1/statements", lambda request: httpx.Response(200, json={"statements": [STATEMENT]}))
    fake.on("GET", "/open/v1/statements/7", lambda request: httpx.Response(200, json={**STATEMENT, "lines": [line]}))
    pdf = httpx.Response(
        200,
        content=b"%PDF-1.4 ...",
        headers={"Content-Type": "application/pdf", "Content-Disposition": 'attachment; filename="s-7.pdf"'},
    )
    fake.on("GET", "/open/v1/statements/7/pdf", lambda request: pdf)
    fake.on("GET", "/open/v1/statements/8/csv", lambda request: error(404, "statement_not_found", "no statement 8"))

    [listed] = kq.statements(limit=5)
    one = kq.statement(7)
    found = kq.statement_file(7, "pdf")

    assert (listed.id, listed.first_day, listed.period_start, listed.lines) == (
        7,
        date(2026, 11, 25),
        datetime(2026, 11, 24, 16, tzinfo=UTC),
        None,
    )
    assert listed.figures == {"opening": 500000, "sales": -7000, "closing": 493000}
    assert one.lines is not None and [(x.order_no, x.amount_minor, x.settled) for x in one.lines] == [
        ("2611250384017265", -7000, True)
    ]
    assert (found.filename, found.media_type, found.content) == ("s-7.pdf", "application/pdf", b"%PDF-1.4 ...")
    assert "PDF" not in repr(found)
    assert fake.requests[0].url.query == b"limit=5"
    with pytest.raises(ApiError) as refused:
        kq.statement_file(8)
    assert (refused.value.status, refused.value.code) == (404, "statement_not_found")


def test_a_code_that_does_not_open_with_this_key_raises(fake: FakeKaquan, kq: AgentClient) -> None:
    other = code_key(SECRET, "kq_ak_0000000000000000")
    order = order_json("2611250000000001", "A-1", (None, "SECRET-1"), key=other)
    fake.on("GET", "/open/v1/orders/A-1", lambda request: httpx.Response(200, json={"order": order}))

    with pytest.raises(ApiError) as failed:
        kq.order("A-1")

    assert (failed.value.status, failed.value.code) == (0, "undecryptable_code")


async def test_the_async_client_speaks_the_same_protocol(fake: FakeKaquan) -> None:
    order = order_json("2611250000000001", "A-1", (None, "SECRET-1"))
    fake.on("GET", "/open/v1/products", lambda request: httpx.Response(200, json=PRODUCTS))
    fake.on("POST", "/open/v1/orders", lambda request: httpx.Response(201, json={"order": order}))
    fake.on("GET", "/open/v1/orders/A-1", lambda request: error(404, "order_not_found", "no order A-1"))
    listed = {key: value for key, value in order.items() if key != "codes"}
    route, queries = pages("orders", [[listed], [listed]])
    fake.on("GET", "/open/v1/orders", route)
    ledger_route, _ = pages("entries", [[]])
    fake.on("GET", "/open/v1/ledger", ledger_route)
    balance = {"currency": "CNY", "balance_minor": 0, "credit_limit_minor": 0, "available_minor": 0}
    fake.on("GET", "/open/v1/balance", lambda request: httpx.Response(200, json=balance))

    async with AsyncAgentClient("http://kq.test", KEY_ID, SECRET, transport=fake.transport()) as kq:
        assert [product.sku for product in await kq.products()] == ["NETFLIX-1M"]
        placed = await kq.place_order("A-1", "NETFLIX-1M", 1)
        with pytest.raises(ApiError) as missing:
            await kq.order("A-1")
        listed_orders = [found async for found in kq.orders(datetime(2026, 11, 25, tzinfo=UTC), datetime.now(UTC))]
        entries = [entry async for entry in kq.ledger(since=datetime(2026, 11, 25, tzinfo=UTC))]
        assert await kq.balance() == Balance("CNY", 0, 0, 0)

    assert placed.codes == (Code(None, "SECRET-1", date(2027, 12, 31)),)
    assert (missing.value.status, missing.value.code) == (404, "order_not_found")
    assert [found.order_no for found in listed_orders] == ["2611250000000001"] * 2
    assert queries[1]["cursor"] == "cursor-1"
    assert entries == []
    assert len({request.headers[request_signing.NONCE_HEADER] for request in fake.requests}) == len(fake.requests)


WEBHOOK_KEY = bytes(range(24))
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
EVENT = b'{"id":"msg_1","type":"order.delivered","timestamp":"2026-11-25T08:00:00Z","data":{"order":{}}}'


def webhook_headers(body: bytes, *, stamp: int | None = None, key: bytes = WEBHOOK_KEY) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    digest = hmac.new(key, f"msg_1.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(stamp),
        "Webhook-Signature": "v1," + base64.b64encode(digest).decode(),
    }


def test_a_genuine_callback_is_accepted_whatever_the_header_case() -> None:
    event = verify_callback(WEBHOOK_SECRET, webhook_headers(EVENT), EVENT)
    assert event["type"] == "order.delivered"


def test_a_callback_signed_with_several_secrets_passes_when_one_matches() -> None:
    headers = webhook_headers(EVENT)
    headers["Webhook-Signature"] = "v1,bm9wZQ== v2,bm9wZQ== " + headers["Webhook-Signature"]
    assert verify_callback(WEBHOOK_SECRET, headers, EVENT)["id"] == "msg_1"


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        (lambda: webhook_headers(EVENT), EVENT.replace(b"delivered", b"refunded"), "invalid_signature"),
        (lambda: webhook_headers(EVENT, key=bytes(24)), EVENT, "invalid_signature"),
        (lambda: webhook_headers(EVENT, stamp=int(time.time()) - 3600), EVENT, "timestamp_out_of_window"),
        (lambda: {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time()))}, EVENT, "missing_header"),
        (lambda: webhook_headers(b"[1]"), b"[1]", "bad_payload"),
    ],
    ids=["tampered body", "other secret", "stale", "unsigned", "not an object"],
)
def test_a_forged_stale_or_unsigned_callback_is_rejected(
    headers: Callable[[], dict[str, str]], body: bytes, code: str
) -> None:
    """Headers are made when the test runs, not when it is collected (a long run would make them stale)."""
    with pytest.raises(CallbackRejected) as rejected:
        verify_callback(WEBHOOK_SECRET, headers(), body)
    assert rejected.value.code == code


def test_the_sdk_works_as_a_vendored_copy_without_the_rest_of_kaquan(tmp_path: Path) -> None:
    shutil.copytree(Path(kaquan.client.__file__).parent, tmp_path / "vendored_kaquan_client")
    probe = (
        "import sys, vendored_kaquan_client as kq;"
        "assert kq.AgentClient and kq.verify_callback;"
        "print(sorted(m for m in sys.modules if m == 'kaquan' or m.startswith('kaquan.')))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter, a fixed probe
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_query_values_are_sent_percent_encoded_a_plus_as_2b_and_a_space_as_20() -> None:
    sent = wire.encode_query([("q", "a b+c"), ("since", "2026-11-25T08:00:00+08:00")])

    assert sent == "q=a%20b%2Bc&since=2026-11-25T08%3A00%3A00%2B08%3A00"
    assert "+" not in sent
    assert request_signing.canonical_query(sent) == sent


def test_the_order_of_a_callback_reads_as_the_order_the_api_answers() -> None:
    summary = order_json("2611250384017266", "A-2")
    del summary["codes"]
    event = {
        "id": "evt_1",
        "type": "order.refunded",
        "timestamp": "2026-11-25T08:01:04.000Z",
        "data": {"order": summary},
    }

    order = callback_order(event)

    assert (order.out_order_no, order.status, order.codes) == ("A-2", "processing", ())
    assert order.created_at == datetime(2026, 11, 25, 8, tzinfo=UTC)
    with pytest.raises(CallbackRejected, match="no order"):
        callback_order({"type": "order.delivered", "data": {}})
    with pytest.raises(CallbackRejected, match="codes"):
        callback_order({"data": {"order": order_json("2611250384017266", "A-2", (None, "S-1"))}})


def test_a_ledger_entry_carries_the_out_order_no_of_its_order() -> None:
    raw = {
        "id": 2,
        "at": "2026-11-25T08:00:00.000Z",
        "kind": "order",
        "amount_minor": -7000,
        "reference": "2611250384017265",
        "memo": "order 2611250384017265",
        "out_order_no": "A-1",
    }

    assert entry_from(raw) == LedgerEntry(
        2, datetime(2026, 11, 25, 8, tzinfo=UTC), "order", -7000, "2611250384017265", "order 2611250384017265", "A-1"
    )
