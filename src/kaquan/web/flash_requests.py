"""A flash-sale purchase request read at the ASGI level, before FastAPI, exactly as the purchase route reads it.

Both layers in front of the route (`web.flash_fast` for sold-out answers, `web.flash_admission` for the
purchases a live event admits) read the body once, take only the route's exact JSON shape, and hand
anything else on to the route with the body replayed, so that the route answers it as it always did.
"""

import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope

from kaquan.runtime import Runtime
from kaquan.web.buyers_api import BUYER_COOKIE
from kaquan.web.content import is_json

PURCHASE_ROUTE = "/api/flash/{event_id}/purchase"
_PURCHASE_PATH = re.compile(r"/api/flash/([1-9][0-9]{0,11})/purchase")
_FIELDS = frozenset({"buyer", "quantity", "request_id"})
_INT64 = 2**63
_WANTED = (b"content-length", b"content-type", b"x-device-token", b"cookie", b"authorization")


@dataclass(frozen=True)
class PurchaseRequest:
    """A `POST /api/flash/{event_id}/purchase` whose declared size fits the body cap, and the runtime serving it."""

    event_id: int
    rt: Runtime
    headers: dict[bytes, str]  # the few the two layers read (`request_headers`)
    cap: int  # the body cap, bytes

    @property
    def sends_json(self) -> bool:
        content_type = self.headers.get(b"content-type")
        return content_type == "application/json" or is_json(content_type)


def purchase_request(scope: Scope) -> PurchaseRequest | None:
    """The purchase a layer may take; None for anything else (another request, no Content-Length within the cap)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    match = _PURCHASE_PATH.fullmatch(scope["path"])
    rt: Runtime | None = getattr(scope["app"].state, "runtime", None) if match is not None else None
    if match is None or rt is None:
        return None
    headers = request_headers(scope)
    cap = rt.settings.max_body_kb * 2**10
    declared = headers.get(b"content-length", "")  # none, or not a number: the route's body cap decides
    if not (declared.isascii() and declared.isdigit()) or int(declared) > cap:
        return None
    return PurchaseRequest(int(match[1]), rt, headers, cap)


async def read_body(receive: Receive, cap: int) -> tuple[bytes, bool]:
    """The body and True, or what was read once it passed `cap` bytes and False (the stack refuses it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > cap:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def replayed(body: bytes, complete: bool, receive: Receive) -> Receive:
    """The body already read, once, then whatever the client sends next (the rest of it, a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": not complete}

    return replay


def request_headers(scope: Scope) -> dict[bytes, str]:
    """The few headers the two layers read, in one pass."""
    return {name: value.decode("latin-1") for name, value in scope["headers"] if name in _WANTED}


def cookies_of(header: str | None) -> dict[str, str]:
    if not header:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed cookie header: the route reads it its own way
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def buyer_token_of(authorization: str | None, cookies: dict[str, str]) -> str | None:
    """As `web.buyers_api.buyer_token` reads it: `Authorization: Bearer kqb1…`, else the `kq_buyer` cookie."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip().startswith("kqb1."):
        return value.strip()
    return cookies.get(BUYER_COOKIE)


def purchase_of(body: bytes) -> tuple[str, int, str] | None:
    """(buyer, quantity, request_id) when the body is exactly the route's JSON shape; anything else is the route's."""
    try:
        sent: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(sent, dict) or not _FIELDS.issuperset(sent):
        return None
    buyer, quantity, request_id = sent.get("buyer"), sent.get("quantity", 1), sent.get("request_id")
    if not isinstance(buyer, str) or not 1 <= len(buyer) <= 200:
        return None
    if type(quantity) is not int or not -_INT64 <= quantity < _INT64:
        return None
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 128:
        return None
    return buyer, quantity, request_id
