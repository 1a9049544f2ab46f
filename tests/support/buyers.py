"""Buyer verification in tests: the code the shop sent (opened from its outbox event), a verified buyer token."""

import base64
import json

import httpx
from sqlalchemy import select

from kaquan.buyers.service import SEND_TOPIC, sealed_for
from kaquan.kit.outbox import OutboxEvent
from kaquan.runtime import Runtime


async def sent_code(rt: Runtime) -> tuple[str, str]:
    """(to, code) of the latest code the shop queued for sending, as the worker will open it."""
    async with rt.db.read() as session:
        stmt = select(OutboxEvent).where(OutboxEvent.topic == SEND_TOPIC).order_by(OutboxEvent.id.desc()).limit(1)
        event = (await session.execute(stmt)).scalar_one()
    payload = event.payload
    message = json.loads(rt.buyers.box.open(base64.b64decode(payload["sealed"]), sealed_for(payload["id"])))
    return message["to"], message["code"]


async def verified_token(rt: Runtime, client: httpx.AsyncClient, contact: str) -> str:
    """Verify `contact` over HTTP (codes to the log, as in a demo) and return the buyer token."""
    rt.settings.dev_contact_codes = True
    started = await client.post("/api/buyers/verify/start", json={"contact": contact})
    assert started.status_code == 202, started.text
    _, code = await sent_code(rt)
    confirmed = await client.post("/api/buyers/verify/confirm", json={"contact": contact, "code": code})
    assert confirmed.status_code == 200, confirmed.text
    return str(confirmed.json()["token"])
