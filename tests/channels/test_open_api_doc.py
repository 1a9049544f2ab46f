"""docs/open-api.md is part of the product: its worked examples must be what the server and the SDK compute."""

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from kaquan.channels import errors
from kaquan.channels.agents import request_signing
from kaquan.channels.agents.authentication import AgentSuspended
from kaquan.channels.agents.code_encryption import code_key, decrypt_field
from kaquan.channels.pricing import ChannelInactive
from kaquan.client import AgentClient, ApiError, verify_callback, wire
from kaquan.inventory.errors import OutOfStock
from kaquan.kit.errors import Busy, IdempotencyConflict, RateLimited
from kaquan.ledger.errors import InsufficientFunds
from kaquan.orders.errors import InvalidQuantity
from kaquan.risk import ChallengeRequired, RiskDeclined
from kaquan.settlement import FORMATS, RunNotFound
from kaquan.web.app import create_app
from kaquan.web.content import UnsupportedMediaType

DOC = (Path(__file__).parents[2] / "docs" / "open-api.md").read_text()
KEY_ID = "kq_ak_3f9c2a7d1e0b4c55"
SECRET = "kq_sk_" + "s" * 43


def section(title: str) -> str:
    """The text under a `##` or `###` heading, up to the next such heading."""
    parts = re.split(r"^#{2,3} (.+)$", DOC, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))[title]


def values(text: str) -> dict[str, str]:
    """The `| label | `value` |` rows of a section's tables."""
    return dict(re.findall(r"^\| ([^|`]+?) \| `([^`]*)` \|$", text, flags=re.MULTILINE))


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)\n```$", text, flags=re.MULTILINE | re.DOTALL)


POST = section("Worked example: a POST")
GET = section("Worked example: a GET with a query")
CODE = section("Worked example: opening a code")
CALLBACK = section("Worked example: a callback")


def sdk_request(
    monkeypatch: pytest.MonkeyPatch, example: dict[str, str], call: Callable[[AgentClient], object]
) -> httpx.Request:
    """The request the SDK sends for `call`, at the example's time and with its nonce."""
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(418, json={"error": {"code": "teapot", "message": "recorded", "details": {}}})

    monkeypatch.setattr(wire, "time", SimpleNamespace(time=lambda: int(example["timestamp"]) + 0.9))
    monkeypatch.setattr(wire, "secrets", SimpleNamespace(token_urlsafe=lambda size: example["nonce"]))
    transport = httpx.MockTransport(record)
    with (
        AgentClient("http://shop.example", example["key id"], example["secret"], transport=transport) as kq,
        pytest.raises(ApiError, match="teapot"),
    ):
        call(kq)
    return sent[0]


def test_the_post_example_is_what_the_server_computes() -> None:
    example = values(POST)
    body = blocks(POST, "json")[0].encode()

    canonical = request_signing.canonical_string(
        example["method"], example["path"], "", body, example["timestamp"], example["nonce"]
    )

    assert len(body) == int(re.search(r"The body, (\d+) bytes", POST)[1])  # type: ignore[index]
    assert hashlib.sha256(body).hexdigest() == example["body SHA-256"]
    assert blocks(POST, "text") == [canonical]
    assert request_signing.sign(example["secret"], canonical) == example["signature"]
    http = blocks(POST, "http")[0]
    assert f"X-Kq-Signature: {example['signature']}" in http.splitlines()
    assert http.endswith("\n\n" + body.decode())


def test_the_sdk_sends_exactly_the_post_example(monkeypatch: pytest.MonkeyPatch) -> None:
    example = values(POST)
    request = sdk_request(monkeypatch, example, lambda kq: kq.place_order("A-20261125-0001", "NETFLIX-1M", 2))

    assert request.url.raw_path.decode() == example["path"]
    assert request.content == blocks(POST, "json")[0].encode()
    assert request.headers["X-Kq-Signature"] == example["signature"]


def test_the_get_example_is_what_the_server_computes() -> None:
    example = values(GET)
    query = example["query as sent"]

    canonical = request_signing.canonical_string(
        example["method"], example["path"], query, b"", example["timestamp"], example["nonce"]
    )

    assert request_signing.canonical_query(query) == example["canonical query"] == wire.canonical_query(query)
    assert hashlib.sha256(b"").hexdigest() == example["body SHA-256"]
    assert blocks(GET, "text") == [canonical]
    assert request_signing.sign(example["secret"], canonical) == example["signature"]


def test_the_sdk_signs_the_get_example_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    example = values(GET)
    since, until = datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)
    request = sdk_request(monkeypatch, example, lambda kq: next(kq.orders(since, until, limit=50)))

    assert request.url.query.decode() == example["canonical query"]
    assert request.headers["X-Kq-Signature"] == example["signature"]


def test_every_query_canonicalisation_example_holds_for_server_and_sdk() -> None:
    rows = re.findall(r"^\| `([^`]*)` \| `([^`]*)` \|$", section("Query canonicalisation examples"), re.MULTILINE)

    assert len(rows) >= 5
    for raw, canonical in rows:
        assert request_signing.canonical_query(raw) == canonical == wire.canonical_query(raw), raw


def test_the_code_example_opens_with_the_server_and_the_sdk() -> None:
    example = values(CODE)
    key = code_key(example["secret"], example["key id"])
    value = example["field value"]

    assert key.hex() == example["derived key (hex)"]
    assert base64.b64decode(value)[:12].hex() == example["nonce (hex)"]
    assert decrypt_field(key, value, example["order no"]) == example["plaintext"]
    assert (
        wire.Credentials(example["key id"], example["secret"]).open_field(value, example["order no"])
        == (example["plaintext"])
    )


def test_the_codes_of_the_order_example_open_with_the_example_key() -> None:
    example = values(CODE)
    order = section("POST /open/v1/orders")
    sealed = re.findall(r'"secret": "([A-Za-z0-9+/=]+)"', order)
    key = code_key(example["secret"], example["key id"])

    opened = [decrypt_field(key, value, example["order no"]) for value in sealed]

    assert sealed[0] == example["field value"]
    assert opened[0] == example["plaintext"]
    assert len(opened) == 2


def test_the_callback_example_verifies() -> None:
    example = values(CALLBACK)
    body = blocks(CALLBACK, "json")[0].encode()
    headers = {name: example[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    key = base64.b64decode(example["secret"].removeprefix("whsec_"))
    signed = f"{example['webhook-id']}.{example['webhook-timestamp']}.".encode() + body

    assert example["webhook-signature"] == "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode()
    event = verify_callback(example["secret"], headers, body, tolerance_s=10**10)
    assert event["id"] == example["webhook-id"]


def test_the_python_recipes_in_the_guide_sign_and_decrypt_like_the_server() -> None:
    recipes: dict[str, Any] = {}
    for recipe in blocks(DOC, "python")[:2]:
        exec(recipe, recipes)  # noqa: S102 - the guide's own code, run as an agent would
    example = values(CODE)
    key = recipes["code_key"](example["secret"], example["key id"])

    headers = recipes["signed_headers"](KEY_ID, SECRET, "get", "/open/v1/orders", "until=b&since=a%3A", b"")
    canonical = request_signing.canonical_string(
        "GET", "/open/v1/orders", "until=b&since=a%3A", b"", headers["X-Kq-Timestamp"], headers["X-Kq-Nonce"]
    )

    assert request_signing.signature_matches(SECRET, canonical, headers["X-Kq-Signature"])
    assert request_signing.NONCE_PATTERN.fullmatch(headers["X-Kq-Nonce"])
    assert recipes["open_field"](key, example["field value"], example["order no"]) == example["plaintext"]


AGENT_ERRORS = (
    IdempotencyConflict,
    RateLimited,
    Busy,
    errors.InvalidSignature,
    errors.UnknownKey,
    errors.KeyRevoked,
    errors.TimestampOutOfWindow,
    errors.NonceReused,
    errors.IpNotAllowed,
    errors.SkuNotAvailableForAgent,
    errors.AgentOrderNotFound,
    errors.MissingSignatureHeader,
    errors.InvalidNonce,
    errors.InvalidTimestamp,
    errors.AmbiguousQuery,
    UnsupportedMediaType,
    AgentSuspended,
    ChannelInactive,
    InsufficientFunds,
    OutOfStock,
    InvalidQuantity,
    RunNotFound,
    RiskDeclined,
    ChallengeRequired,
)
CONTRACT_ERRORS = {
    *((error.status, error.code) for error in AGENT_ERRORS),
    (400, "bad_input"),
    (404, "not_found"),
    (405, "method_not_allowed"),
    (413, "payload_too_large"),
    (422, "validation_error"),
    (500, "internal_error"),
}


def test_every_error_code_of_the_contract_is_documented_with_its_status_and_nothing_else() -> None:
    table = section("Errors")
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", table, re.M)
    documented = {(int(status), code) for status, code in rows}
    assert documented == CONTRACT_ERRORS
    assert len(rows) == len(documented), "each code once"


def test_the_error_example_and_every_documented_status_are_published_in_openapi() -> None:
    published = create_app().openapi()
    statuses = {status for status, _ in CONTRACT_ERRORS if status not in (404, 405, 500)}
    for path, operations in published["paths"].items():
        if path.startswith("/open/v1/"):
            for operation in operations.values():
                assert {str(s) for s in statuses} - {"402", "409", "413", "415"} <= set(operation["responses"]), path


@pytest.mark.parametrize(
    "route",
    [
        "GET /open/v1/products",
        "POST /open/v1/orders",
        "POST /open/v1/orders/batch",
        "GET /open/v1/orders/{out_order_no}",
        "GET /open/v1/orders?since=…&until=…",
        "GET /open/v1/balance",
        "GET /open/v1/ledger?since=…&until=…",
        "GET /open/v1/statements",
        "GET /open/v1/statements/{id}",
    ],
)
def test_every_endpoint_has_its_own_section(route: str) -> None:
    text = section(route)
    assert "```http" in text
    assert "```json" in text


def test_the_statement_files_are_documented_with_their_media_types_and_published() -> None:
    text = section("GET /open/v1/statements/{id}/csv, /xlsx, /pdf")
    published = create_app().openapi()["paths"]
    for fmt, (media_type, _) in FORMATS.items():
        assert f"| `…/{fmt}` | `{media_type}` |" in text
        answers = published[f"/open/v1/statements/{{statement_id}}/{fmt}"]["get"]["responses"]
        assert media_type.partition(";")[0] in answers["200"]["content"]
    assert "GET /open/v1/statements/12/csv HTTP/1.1" in blocks(text, "http")[0]
