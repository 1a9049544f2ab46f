"""No gateway credential ever reaches a log record or a provider-facing answer.

Every installed gateway pays, is queried, refunds and refuses a forged
notification while every logger captures at DEBUG; then every record is
searched for the merchant's private keys (their base64 bodies), the WeChat
APIv3 key and the Stripe secret key and webhook secret, as the simulation
stored them for the gateway.
"""

import json
import logging
from pathlib import Path

import httpx
import pytest
from tests.support.builders import given_sku_with_codes

from kaquan.kit import clock
from kaquan.kit.errors import DomainError
from kaquan.orders import service as orders
from kaquan.payments import notifications, refunds, registry, sweeps
from kaquan.payments import service as payments
from kaquan.payments.plugins import GatewaySetup, load_plugins
from kaquan.runtime import Runtime
from kaquan.web.app import create_app
from kaquan.worker import run_once

PUBLIC_URL = "http://shop.test"


def credentials_in(state_dir: Path) -> list[str]:
    """Every secret a simulation keeps for its gateway: PEM bodies line by line, and JSON/plain key values."""
    found: list[str] = []
    for path in state_dir.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text()
        if "PRIVATE KEY" in text:
            found += [line for line in text.splitlines() if line and not line.startswith("-----")]
        elif path.suffix == ".json":
            found += [v for k, v in json.loads(text).items() if "secret" in k or "key" in k]
        elif "apiv3" in path.name:
            found.append(text.strip())
    return [secret for secret in found if len(secret) >= 16]


@pytest.mark.parametrize("name", sorted(p.name for p in load_plugins()))
async def test_no_gateway_credential_reaches_a_log(
    rt: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(rt=rt)
    plugin = next(p for p in load_plugins() if p.name == name)
    state_dir = tmp_path / "gateways"
    simulation = plugin.simulated(
        GatewaySetup(rt.settings, PUBLIC_URL, state_dir, notify_transport=httpx.ASGITransport(app=app))
    )
    registry.configure([simulation.gateway], public_url=PUBLIC_URL)
    sku = await given_sku_with_codes(rt, 3, price_minor=1990)
    async with rt.db.transaction() as session:
        placed = await orders.place(
            rt.db,
            session,
            rt.order_keys,
            orders.OrderRequest(sku=sku.id, quantity=1, idempotency_key="k", client_token="c" * 22),
            max_per_order=10,
            hold_minutes=15,
        )
        token = (await payments.start(session, simulation.gateway, placed.order)).token
    await payments.choose(
        rt.db, token, f"{name}:{simulation.gateway.methods[0]}", public_url=PUBLIC_URL, payer=payments.Payer("1.2.3.4")
    )
    sent = await simulation.provider.pay(token)
    assert sent is not None
    with pytest.raises(DomainError):  # a forged notification is refused, and logged
        await notifications.receive(rt.db, simulation.gateway, sent.headers, sent.body + b"x")
    clock.travel(120)
    await sweeps.check_pending(rt.db)
    async with rt.db.transaction() as session:
        await refunds.request_for_order(
            rt.db, session, placed.order.number, amount_minor=500, reason="退款", actor="finance", may_approve=True
        )
    await run_once(rt)
    await simulation.provider.drain()
    registry.configure([])

    secrets_ = credentials_in(state_dir)
    assert len(secrets_) >= 2, secrets_
    logged = "\n".join(record.getMessage() + repr(record.args) for record in caplog.records)
    assert caplog.records
    for secret in secrets_:
        assert secret[:24] not in logged, f"a {name} credential reached the log"
