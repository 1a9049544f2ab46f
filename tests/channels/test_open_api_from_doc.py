"""An agent that has read nothing but docs/open-api.md buys codes from the real app.

The client below is written from the guide alone, with hashlib, hmac and
cryptography: it imports none of kaquan's signing, decryption or SDK code, so
a mistake in the guide, or a server that drifts from it, fails this test.
The operator's setup goes through the admin API.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_from_bytes, unquote_to_bytes

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tests.support.builders import given_codes, given_sku, random_codes

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
        timestamp, nonce = str(int(time.time())), secrets.token_urlsafe(16)
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
