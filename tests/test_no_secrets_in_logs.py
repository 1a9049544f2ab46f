"""No code secret, lookup secret, key or token ever reaches a log record or an error response.

A realistic session runs with every logger capturing at DEBUG: imports (with bad
lines), purchases, payments, good and failed lookups, forged callbacks, reveals
with and without a reason, and a leak trace. Then every captured record, and
every error body the clients received, is searched for every secret in play.
"""

import base64
import logging
import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.support.agents import given_agent
from tests.support.console import console_sign_in
from tests.support.identity import PASSWORD, given_user

from kaquan.audit.models import AuditEntry
from kaquan.inventory.models import Batch
from kaquan.kit import logs
from kaquan.kit.keys import StoredKey
from kaquan.runtime import Runtime

_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def code() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(18))


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture DEBUG from the root and from every logger that does not propagate to it."""
    caplog.set_level(logging.DEBUG)
    isolated = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in isolated:
        logger.addHandler(caplog.handler)
    yield caplog
    for logger in isolated:
        logger.removeHandler(caplog.handler)


class Errors:
    """Every error response body the session received."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def hook(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            await response.aread()
            self.bodies.append(f"{response.status_code} {response.request.url} {response.text}")


async def test_no_secret_or_key_reaches_a_log_or_an_error_response(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], every_log: pytest.LogCaptureFixture
) -> None:
    errors = Errors()
    client.event_hooks["response"].append(errors.hook)
    admin = admin_headers
    codes = [code() for _ in range(6)]
    planted: list[str] = list(codes)

    product = (
        await client.post("/admin/api/products", json={"name": "Game", "kind": "membership"}, headers=admin)
    ).json()
    sku = {"product_id": product["id"], "code": "GAME-50", "name": "50 points", "face_value_minor": 500}
    assert (await client.post("/admin/api/skus", json=sku | {"price_minor": 480}, headers=admin)).status_code == 201

    async def upload(content: str) -> httpx.Response:
        files = {"file": ("codes.txt", content.encode(), "text/plain")}
        return await client.post("/admin/api/skus/GAME-50/batches", files=files, headers=admin)

    bad = [code(), code()]
    planted += bad
    assert (await upload(f"{bad[0]}\n{bad[0]}\n{bad[1]},x,y,z\n")).status_code == 400
    assert (await upload("\n".join(codes))).status_code == 201
    assert (await upload(codes[0])).status_code == 400  # a duplicate of a stored code

    async def order() -> dict[str, Any]:
        headers = {"Idempotency-Key": secrets.token_hex(8), "X-Client-Token": "the-log-tests-own-client"}
        created = await client.post("/api/orders", json={"sku": "GAME-50", "quantity": 2}, headers=headers)
        assert created.status_code == 201, created.text
        body: dict[str, Any] = created.json()
        planted.append(body["lookup_secret"])
        return body

    paid, unpaid = await order(), await order()
    token = paid["pay_url"].rsplit("/", 1)[1]
    headers, body = rt.dev_gateway.notification(token, paid["total_minor"], paid["currency"], "txn-1")
    assert (await client.post("/payments/dev/notify", content=body + b" ", headers=headers)).status_code >= 400
    assert (
        await client.post(
            "/payments/dev/notify", content=body, headers=dict(headers) | {next(iter(headers)): "t=1,v1=00"}
        )
    ).status_code >= 400
    assert (await client.post("/payments/dev/notify", content=body, headers=headers)).status_code == 200

    lookup = {"number": paid["number"], "secret": paid["lookup_secret"]}
    assert (await client.post("/api/orders/lookup", json=lookup)).status_code == 200
    right = paid["lookup_secret"]
    one_off = right[:-1] + ("A" if right[-1] != "A" else "B")
    for wrong in (unpaid["lookup_secret"], one_off, "x" * 64):
        assert (await client.post("/api/orders/lookup", json=lookup | {"secret": wrong})).status_code >= 400
    assert (await client.post("/api/orders/lookup", json={"number": "K0", "secret": paid["lookup_secret"]})).is_error

    reveal = f"/admin/api/orders/{paid['number']}/reveal"
    assert (await client.post(reveal, json={"reason": ""}, headers=admin)).status_code == 400
    assert (await client.post(reveal, json={"reason": "ticket 12"})).status_code == 401
    assert (await client.post(reveal, json={"reason": "ticket 12"}, headers=admin)).status_code == 200
    leak = {"file": ("leak.txt", f"{codes[0]}\n{code()}\n,\n".encode(), "text/plain")}
    assert (await client.post("/admin/api/leaks/trace", files=leak, headers=admin)).status_code == 200
    assert (
        await client.post("/admin/api/leaks/trace", files={"file": ("x", b"", "text/plain")}, headers=admin)
    ).is_error

    # Every key in play: the master key, each batch's data key, each named key, and the admin token.
    master = base64.b64decode(rt.settings.master_key or "")
    keys = [master]
    async with rt.db.read() as session:
        wrapped = [*(await session.execute(select(Batch.wrapped_key).where(Batch.wrapped_key.is_not(None)))).scalars()]
        wrapped += list((await session.execute(select(StoredKey.wrapped))).scalars())
        trail = [
            f"{e.actor} {e.action} {e.target} {e.before} {e.after}"
            for e in (await session.execute(select(AuditEntry))).scalars()
        ]
    keys += [rt.keyring.unwrap(w) for w in wrapped]
    planted += [
        text
        for key in keys
        for text in (key.hex(), base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode())
    ]
    planted.append(admin["Authorization"].split(" ", 1)[1])

    as_json = logs.JsonFormatter()  # the production format: every extra field of a record is written too
    logged = [as_json.format(record) + repr(record.args) + repr(record.__dict__) for record in every_log.records]
    assert len(logged) > 10, "the session logged something worth searching"
    assert len(errors.bodies) >= 10
    for haystack, where in ((logged, "log"), (errors.bodies, "error response"), (trail, "audit trail")):
        for text in haystack:
            leaked = [i for i, secret in enumerate(planted) if secret in text]
            assert not leaked, f"secret(s) #{leaked} reached a {where}: {text[:300]}"


def _shown(page: httpx.Response, element: str) -> str:
    found = re.search(rf'id="{element}">([^<]+)<', page.text)
    assert found is not None, page.text
    return found.group(1)


async def test_no_secret_made_on_the_console_reaches_a_log_an_error_page_or_the_audit_trail(
    rt: Runtime, client: httpx.AsyncClient, every_log: pytest.LogCaptureFixture
) -> None:
    """Passwords typed, key and callback secrets, API tokens and the TOTP secret shown on console pages."""
    errors = Errors()
    client.event_hooks["response"].append(errors.hook)
    await given_user(rt, "alice", "owner")
    await given_agent(rt, code="acme")
    console = await console_sign_in(client)
    first_password, new_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    planted = [PASSWORD, first_password, new_password]

    assert (await console.post("/admin/users", {"username": "x", "password": first_password, "role": "owner"})).is_error
    assert (
        await console.post("/admin/users", {"username": "sam", "password": first_password, "role": "support"})
    ).is_redirect
    issued = await console.post("/admin/agents/acme/keys", {"ip_allowlist": "203.0.113.7"})
    planted.append(_shown(issued, "secret-value"))
    key_id = _shown(issued, "secret-key-id")
    planted.append(
        _shown(await console.post(f"/admin/agents/acme/keys/{key_id}/rotate", {"confirm": "yes"}), "secret-value")
    )
    hook = "https://93.184.216.34/kq?token=t0ps3cret-in-the-query"
    planted.append(_shown(await console.post("/admin/agents/acme/callback", {"url": hook}), "secret-value"))
    token = await console.post("/admin/me/tokens", {"name": "bi", "scopes": "finance.read"})
    planted.append(_shown(token, "secret-value"))
    enrol = await console.post("/admin/me/totp")
    planted.append(_shown(enrol, "totp-secret"))
    assert (await console.post("/admin/me/totp/confirm", {"code": "000000"})).is_error
    wrong = {"current_password": new_password, "new_password": first_password, "repeat_password": first_password}
    assert (await console.post("/admin/me/password", wrong)).is_error
    good = {"current_password": PASSWORD, "new_password": new_password, "repeat_password": new_password}
    assert (await console.post("/admin/me/password", good)).is_redirect

    async with rt.db.read() as session:
        trail = [
            f"{e.actor} {e.action} {e.target} {e.before} {e.after}"
            for e in (await session.execute(select(AuditEntry))).scalars()
        ]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = [formatter.format(record) + repr(record.args) for record in every_log.records]
    assert len(trail) >= 8 and len(errors.bodies) >= 3
    # The URL is stored as given (the sender needs it), so a DEBUG driver log of the insert may hold it;
    # the audit trail and every page show it redacted.
    assert not [text for text in trail if "t0ps3cret-in-the-query" in text]
    for haystack, where in ((logged, "log"), (errors.bodies, "error page"), (trail, "audit trail")):
        for text in haystack:
            leaked = [i for i, secret in enumerate(planted) if secret in text]
            assert not leaked, f"secret(s) #{leaked} reached a {where}: {text[:300]}"
