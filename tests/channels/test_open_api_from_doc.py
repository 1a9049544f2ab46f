"""An agent that has read nothing but docs/open-api.md buys codes from the real app.

The client below is written from the guide alone, with hashlib, hmac and
cryptography: it imports none of kaquan's signing, decryption or SDK code, so
a mistake in the guide, or a server that drifts from it, fails this test.
The operator's setup goes through the admin API.
"""

import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, unquote_to_bytes

import httpx
import jsonschema_rs
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from tests.support.builders import GivenSku, given_codes, given_sku, random_codes

from kaquan import ledger, settlement
from kaquan.catalog import service as catalog
from kaquan.catalog.rules import CodeRule
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.channels import pricing as channels
from kaquan.channels.agents import accounts as agents
from kaquan.channels.callbacks import sender
from kaquan.channels.callbacks import service as callbacks
from kaquan.channels.callbacks import signing as callback_signing
from kaquan.channels.callbacks.models import CallbackDelivery
from kaquan.kit import clock, outbox
from kaquan.runtime import Runtime
from kaquan.web.app import create_app


class DocClient:
    """KQ1-HMAC-SHA256 signing and code decryption, exactly as the guide describes them."""

    def __init__(self, http: httpx.AsyncClient, key_id: str, secret: str) -> None:
        self.http = http
        self.key_id = key_id
        self.secret = secret
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=key_id.encode(), info=b"kaquan/open-api/codes/v1")
        self.code_key = hkdf.derive(secret.encode())
        self.now: Callable[[], float] = time.time

    @staticmethod
    def canonical_query(raw_query: str) -> str:
        def encode(part: str) -> str:
            return quote_from_bytes(unquote_to_bytes(part), safe="-._~")

        pairs = sorted(
            (encode(name), encode(value))
            for name, _, value in (item.partition("=") for item in raw_query.split("&") if item)
        )
        return "&".join(f"{name}={value}" for name, value in pairs)

    def headers(self, method: str, path: str, query: str, body: bytes) -> dict[str, str]:
        timestamp, nonce = str(int(self.now())), secrets.token_urlsafe(16)
        canonical = "\n".join(
            [
                "KQ1-HMAC-SHA256",
                method,
                path,
                self.canonical_query(query),
                hashlib.sha256(body).hexdigest(),
                timestamp,
                nonce,
            ]
        )
        signature = hmac.new(self.secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
        return {"X-Kq-Key": self.key_id, "X-Kq-Timestamp": timestamp, "X-Kq-Nonce": nonce, "X-Kq-Signature": signature}

    async def get(self, path: str, query: str = "") -> httpx.Response:
        url = f"{path}?{query}" if query else path
        return await self.http.get(url, headers=self.headers("GET", path, query, b""))

    async def post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {**self.headers("POST", path, "", body), "Content-Type": "application/json"}
        return await self.http.post(path, content=body, headers=headers)

    def open(self, value: str, order_no: str) -> str:
        raw = base64.b64decode(value)
        return AESGCM(self.code_key).decrypt(raw[:12], raw[12:], order_no.encode()).decode()


def refused(response: httpx.Response, status: int, code: str) -> bool:
    body = response.json()
    return (
        response.status_code == status
        and body["error"]["code"] == code
        and set(body["error"])
        == {
            "code",
            "message",
            "details",
            "request_id",
        }
    )


async def test_an_agent_buys_codes_following_the_guide(rt: Runtime, admin_headers: dict[str, str]) -> None:
    imported = random_codes(5)
    sku = await given_sku(rt, max_per_order=10)
    await given_codes(rt, sku, imported)
    since = datetime.now(UTC) - timedelta(minutes=1)
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:

        async def admin(path: str, payload: dict[str, Any]) -> dict[str, Any]:
            response = await http.post(f"/admin/api{path}", json=payload, headers=admin_headers)
            assert response.status_code == 201, response.text
            answer: dict[str, Any] = response.json()
            return answer

        await admin("/channels/api/prices", {"sku": sku.code, "price_minor": 1500, "tier": ""})
        agent = await admin(
            "/agents", {"code": "acme", "name": "Acme Games", "currency": "CNY", "credit_limit_minor": 0, "tier": ""}
        )
        key = await admin(f"/agents/{agent['id']}/keys", {"ip_allowlist": []})
        await admin(f"/agents/{agent['id']}/topups", {"amount_minor": 10_000, "reference": "BANK-1", "memo": "deposit"})
        kq = DocClient(http, key["key_id"], key["secret"])

        listed = (await kq.get("/open/v1/products")).json()["products"]
        assert [(p["sku"], p["price_minor"], p["currency"], p["in_stock"], p["available"]) for p in listed] == [
            (sku.code, 1500, "CNY", True, 5)
        ]

        order_body = {"out_order_no": "doc-0001", "sku": sku.code, "quantity": 2, "mode": "sync"}
        placed = await kq.post("/open/v1/orders", order_body)
        assert placed.status_code == 201, placed.text
        order = placed.json()["order"]
        assert (order["status"], order["requested_quantity"], order["quantity"]) == ("delivered", 2, 2)
        assert (order["unit_price_minor"], order["total_minor"], order["currency"]) == (1500, 3000, "CNY")
        codes = {kq.open(code["secret"], order["order_no"]) for code in order["codes"]}
        assert len(codes) == 2
        assert codes <= set(imported)
        assert all(code["card_no"] is None for code in order["codes"])

        replay = await kq.post("/open/v1/orders", order_body)
        assert replay.status_code == 200
        again = replay.json()["order"]
        assert again["order_no"] == order["order_no"]
        assert {kq.open(code["secret"], again["order_no"]) for code in again["codes"]} == codes

        conflict = await kq.post("/open/v1/orders", {**order_body, "quantity": 3})
        assert refused(conflict, 409, "idempotency_conflict")

        found = (await kq.get("/open/v1/orders/doc-0001")).json()["order"]
        assert (found["order_no"], found["status"]) == (order["order_no"], "delivered")
        assert {kq.open(code["secret"], found["order_no"]) for code in found["codes"]} == codes

        until = datetime.now(UTC) + timedelta(minutes=1)
        window = f"until={until:%Y-%m-%dT%H:%M:%SZ}&since={since:%Y-%m-%dT%H%%3A%M%%3A%SZ}&limit=10"
        page = (await kq.get("/open/v1/orders", window)).json()
        assert [listed_order["order_no"] for listed_order in page["orders"]] == [order["order_no"]]
        assert not page["orders"][0].get("codes")
        assert page["next_cursor"] is None

        balance = (await kq.get("/open/v1/balance")).json()
        assert balance == {"currency": "CNY", "balance_minor": 7000, "credit_limit_minor": 0, "available_minor": 7000}
        entries = (await kq.get("/open/v1/ledger")).json()["entries"]
        assert sorted(entry["amount_minor"] for entry in entries) == [-3000, 10_000]
        assert sum(entry["amount_minor"] for entry in entries) == balance["balance_minor"]

        signed_for = json.dumps({**order_body, "out_order_no": "doc-0002", "quantity": 1}).encode()
        sent = json.dumps({**order_body, "out_order_no": "doc-0002", "quantity": 3}).encode()
        headers = {**kq.headers("POST", "/open/v1/orders", "", signed_for), "Content-Type": "application/json"}
        tampered = await http.post("/open/v1/orders", content=sent, headers=headers)
        assert refused(tampered, 401, "invalid_signature")
        assert refused(await kq.get("/open/v1/orders/doc-0002"), 404, "order_not_found")

        once = kq.headers("GET", "/open/v1/balance", "", b"")
        assert (await http.get("/open/v1/balance", headers=once)).status_code == 200
        assert refused(await http.get("/open/v1/balance", headers=once), 401, "nonce_reused")


# --- every example exchange of the guide, replayed against the server ------------------------------

DOC = (Path(__file__).parents[2] / "docs" / "open-api.md").read_text()
ELIDED = "…"
VOLATILE = {"secret", "id"}
"""Keys whose values differ on every run (encrypted code fields, database and event ids): compared by type only."""


@dataclass(frozen=True)
class Exchange:
    """One request of the guide and the answer it shows."""

    method: str
    target: str
    content_type: str | None
    body: bytes
    answer: Any

    @property
    def name(self) -> str:
        out_order_no = json.loads(self.body).get("out_order_no") if self.body else None
        return f"{self.method} {self.target}" + (f" {out_order_no}" if out_order_no else "")


def guide_exchanges() -> dict[str, Exchange]:
    """Each ```http request under "## Endpoints" with the ```json answer that follows it."""
    endpoints = DOC[DOC.index("\n## Endpoints") : DOC.index("\n## Errors")]
    found: dict[str, Exchange] = {}
    blocks = re.findall(r"^```(http|json)\n(.*?)\n```$", endpoints, flags=re.MULTILINE | re.DOTALL)
    for (kind, text), (next_kind, next_text) in itertools.pairwise(blocks):
        if kind != "http" or next_kind != "json":
            continue
        head, _, body = text.partition("\n\n")
        request_line, *header_lines = head.splitlines()
        method, target, _ = request_line.split(" ")
        headers = dict(line.split(": ", 1) for line in header_lines)
        exchange = Exchange(method, target, headers.get("Content-Type"), body.encode(), json.loads(next_text))
        found[exchange.name] = exchange
    return found


def order_numbers_of(document: Any) -> dict[str, str]:
    """out_order_no → order_no of every order in a JSON document."""
    if isinstance(document, dict):
        numbers = {}
        if isinstance(document.get("out_order_no"), str) and isinstance(document.get("order_no"), str):
            numbers[document["out_order_no"]] = document["order_no"]
        for value in document.values():
            numbers |= order_numbers_of(value)
        return numbers
    if isinstance(document, list):
        return {k: v for item in document for k, v in order_numbers_of(item).items()}
    return {}


def problems(shown: Any, real: Any, where: str = "$") -> list[str]:
    """How the server's answer differs from the guide's (the guide's `…` matches anything, and more list items)."""
    if shown == ELIDED:
        return []
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{where}: {real!r} is not an object"]
        if set(shown) != set(real):
            return [f"{where}: keys {sorted(real)} != the guide's {sorted(shown)}"]
        return [problem for key in shown for problem in problems(shown[key], real[key], f"{where}.{key}")]
    if isinstance(shown, list):
        if not isinstance(real, list):
            return [f"{where}: {real!r} is not a list"]
        if shown and shown[-1] == ELIDED:
            shown = shown[:-1]
            if len(real) < len(shown):
                return [f"{where}: {len(real)} items, the guide shows {len(shown)}"]
            real = real[: len(shown)]
        if len(shown) != len(real):
            return [f"{where}: {len(real)} items != the guide's {len(shown)}"]
        return [
            problem
            for n, (s, r) in enumerate(zip(shown, real, strict=True))
            for problem in problems(s, r, f"{where}[{n}]")
        ]
    key = where.rpartition(".")[2]
    if key in VOLATILE and shown is not None:
        return [] if type(shown) is type(real) else [f"{where}: {real!r} is not a {type(shown).__name__}"]
    return [] if shown == real and type(shown) is type(real) else [f"{where}: {real!r} != the guide's {shown!r}"]


class PublishedSchemas:
    """The answers' schemas as /openapi.json publishes them, to validate real answers against."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def _validate(self, schema: dict[str, Any], answer: Any, what: str) -> None:
        rooted = {**schema, "components": self.document["components"]}
        errors = [error.message for error in jsonschema_rs.Draft202012Validator(rooted).iter_errors(answer)]
        assert errors == [], (what, errors)

    def check_answer(self, method: str, target: str, status: int, answer: Any) -> None:
        path = target.partition("?")[0]
        [operation] = [
            operations[method.lower()]
            for template, operations in self.document["paths"].items()
            if method.lower() in operations
            and re.fullmatch(re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(template)), path)
        ]
        schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
        self._validate(schema, answer, f"{method} {target} {status}")

    def check_callback(self, event_type: str, body: Any) -> None:
        operation = self.document["webhooks"][event_type]["post"]
        self._validate(operation["requestBody"]["content"]["application/json"]["schema"], body, event_type)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class FrozenClock:
    """kaquan's clock held still at the guide's times, so the answers' times are the guide's."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = at("2026-11-24T10:00:00+00:00")
        monkeypatch.setattr(clock, "now", lambda: self.now)

    def set(self, text: str) -> None:
        self.now = at(text)


@dataclass(frozen=True)
class GuideWorld:
    kq: DocClient
    agent_id: int
    callback_secret: str


async def given_guide_world(rt: Runtime) -> GuideWorld:
    """The shop of the guide: its two SKUs and their prices, the agent with its deposit, credit and notify URL."""
    async with rt.db.transaction() as session:
        for code, name, price, max_per_order in (
            ("NETFLIX-1M", "Netflix 1 month", 3500, 100),
            ("STEAM-100", "Steam wallet 100", 9600, 5),
        ):
            product = await catalog.create_product(session, ProductCreate(name=name, kind="membership"), actor="t")
            await catalog.create_sku(
                session,
                SkuCreate(
                    product_id=product.id,
                    code=code,
                    name=name,
                    face_value_minor=price,
                    price_minor=price,
                    stock_kind="codes",
                    code_rule=CodeRule(),
                    max_per_order=max_per_order,
                ),
                actor="t",
            )
            await channels.set_price(rt.db, session, "api", code, price, tier="", actor="t")
        agent = await agents.create_agent(
            rt.db,
            session,
            code="acme",
            name="Acme Games",
            currency="CNY",
            credit_limit_minor=100_000,
            tier="",
            actor="t",
        )
        await agents.top_up(rt.db, session, agent.id, 500_000, reference="BANK-20261124-17", memo="deposit", actor="t")
        key = await agents.issue_key(rt.db, session, rt.keyring, agent.id, ip_allowlist=[], actor="t")
        callback_secret = await callbacks.set_endpoint(
            rt.db, session, rt.keyring, agent_id=agent.id, url="http://127.0.0.1:9/kq", allow_private=True, actor="t"
        )
        netflix = await catalog.get_sku(session, "NETFLIX-1M")
    await given_codes(rt, GivenSku(netflix.id, netflix.code), random_codes(1_200), expires_on=date(2027, 12, 31))
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    http = httpx.AsyncClient(transport=transport, base_url="http://shop.test")
    return GuideWorld(DocClient(http, key.key_id, key.secret), agent.id, callback_secret)


async def test_every_request_and_answer_in_the_guide_is_what_the_server_does(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = FrozenClock(monkeypatch)
    world = await given_guide_world(rt)
    kq = world.kq
    kq.now = lambda: frozen.now.timestamp()
    guide = guide_exchanges()
    documented = order_numbers_of(json.loads(json.dumps([e.answer for e in guide.values()])))
    real_numbers: dict[str, str] = {}

    async def replay(name: str, when: str, *, target: str | None = None) -> None:
        """Send the guide's request (to `target` when the guide's path names an id of its own) and compare."""
        frozen.set(when)
        exchange = guide.pop(name)
        target = target or exchange.target
        path, _, query = target.partition("?")
        headers = kq.headers(exchange.method, path, query, exchange.body)
        if exchange.content_type:
            headers["Content-Type"] = exchange.content_type
        answer = await kq.http.request(exchange.method, target, content=exchange.body or None, headers=headers)
        assert answer.status_code in (200, 201), (name, answer.text)
        schemas.check_answer(exchange.method, exchange.target, answer.status_code, answer.json())
        text = answer.text
        real_numbers.update({real: documented[out] for out, real in order_numbers_of(answer.json()).items()})
        for real, shown in real_numbers.items():
            text = text.replace(real, shown)
        assert problems(exchange.answer, json.loads(text)) == [], name

    async with kq.http:
        schemas = PublishedSchemas((await kq.http.get("/openapi.json")).json())
        await replay("GET /open/v1/products", "2026-11-25T07:59:00+00:00")
        await replay("POST /open/v1/orders A-20261125-0001", "2026-11-25T08:00:00+00:00")
        await replay(
            "GET /open/v1/orders?limit=100&since=2026-11-25T00%3A00%3A00Z&until=2026-11-26T00%3A00%3A00Z",
            "2026-11-25T08:00:30+00:00",
        )
        await replay("GET /open/v1/balance", "2026-11-25T08:00:40+00:00")
        await replay("GET /open/v1/ledger?since=2026-11-01T00%3A00%3A00Z", "2026-11-25T08:00:50+00:00")
        await replay("POST /open/v1/orders A-20261125-0002", "2026-11-25T08:01:00+00:00")
        frozen.set("2026-11-25T08:01:04+00:00")
        await outbox.run_due(rt.db)
        await replay("GET /open/v1/orders/A-20261125-0002", "2026-11-25T08:01:30+00:00")
        await replay("POST /open/v1/orders/batch", "2026-11-25T08:02:00+00:00")
        async with rt.db.transaction() as session:  # leave 12000 to spend: 3 of the 5 codes asked for
            held = await ledger.balance(session, (await agents.get_agent(session, world.agent_id)).account_id)
            assert held.spendable_minor is not None
            await agents.top_up(
                rt.db, session, world.agent_id, 12_000 - held.spendable_minor, reference="adjust", actor="t"
            )
        await replay("POST /open/v1/orders A-20261125-0003", "2026-11-25T08:03:00+00:00")
        frozen.set("2026-11-26T01:00:00+00:00")  # 09:00 in Shanghai: 25 November (local) has ended
        async with rt.db.transaction() as session:
            rule = settlement.RuleInput(tiers=(settlement.Tier(10_000, 100),), effective_from=date(2026, 11, 1))
            await settlement.set_rule(rt.db, session, "agent:acme", rule, actor="finance")
            statement = await settlement.create_run(rt.db, session, "agent:acme", "2026-11-25..2026-11-25", actor="t")
        frozen.set("2026-11-26T02:00:00+00:00")
        async with rt.db.transaction() as session:
            await settlement.confirm(rt.db, session, statement.id, actor="finance")
        await replay("GET /open/v1/statements", "2026-11-26T03:00:00+00:00")
        await replay(
            "GET /open/v1/statements/12", "2026-11-26T03:00:10+00:00", target=f"/open/v1/statements/{statement.id}"
        )

    assert guide == {}, "an example of the guide that no step replays"
    await the_callback_example_is_what_the_server_sends(rt, world.callback_secret, real_numbers, schemas)


async def the_callback_example_is_what_the_server_sends(
    rt: Runtime, secret: str, real_numbers: dict[str, str], schemas: PublishedSchemas
) -> None:
    """The guide's callback body, and its receiver sample run on a real callback of the scenario."""
    callbacks_section = DOC[DOC.index("\n## Callbacks") : DOC.index("\n### Worked example: a callback")]
    [shown] = re.findall(r"^```json\n(.*?)\n```$", callbacks_section, flags=re.MULTILINE | re.DOTALL)
    async with rt.db.read() as session:
        sent = (
            (await session.execute(select(CallbackDelivery).where(CallbackDelivery.event_type == "order.delivered")))
            .scalars()
            .all()
        )
    [delivery] = [d for d in sent if d.payload["order"]["out_order_no"] == "A-20261125-0002"]
    body = sender.body_of(delivery)
    for event in sent:
        schemas.check_callback(event.event_type, json.loads(sender.body_of(event)))
    text = body.decode()
    for real, documented in real_numbers.items():
        text = text.replace(real, documented)
    assert problems(json.loads(shown), json.loads(text)) == []

    receiver = re.search(r"```python\n(from kaquan.client import CallbackRejected.*?)\n```", DOC, re.DOTALL)
    assert receiver is not None
    seen: set[str] = set()
    fetched: list[str] = []
    sample: dict[str, Any] = {
        "callback_secret": secret,
        "already_seen": seen.__contains__,
        "remember": seen.add,
        "queue_fetch": fetched.append,
    }
    exec(receiver[1], sample)  # noqa: S102 - the guide's own receiver, run as an agent would
    headers = callback_signing.signed_headers([secret], delivery.event_id, int(time.time()), body)

    assert sample["on_callback"](headers, body) == 200
    assert sample["on_callback"](headers, body) == 200
    assert fetched == ["A-20261125-0002"], "fetched once: the repeat is deduplicated by its id"
    assert sample["on_callback"]({**headers, "webhook-signature": "v1,bm9wZQ=="}, body) == 400
