"""Outbox handler: deliver a buyer's one-time code by e-mail (SMTP), SMS webhook, or the server log in dev mode.

The code travels sealed in the outbox event; the process that runs the worker
installs a `CodeSender` (runtime.start) holding the key that opens it. A code whose
ten minutes are over is not sent any more: the buyer has asked for a new one.
"""

import base64
import json
import logging
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.buyers.service import SEND_TOPIC, Verification, sealed_for
from kaquan.kit import clock, mail, outbox
from kaquan.kit.db import Database

log = logging.getLogger("kaquan.buyers")
SEND_TIMEOUT_S = 10.0


class CodeSender:
    def __init__(self, verification: Verification, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._verification = verification
        self._settings = verification.settings
        self._transport = transport

    async def send(self, payload: dict[str, Any]) -> None:
        if datetime.fromisoformat(payload["expires_at"]) <= clock.now():
            log.info("buyer code %s expired before it could be sent; not sent", payload["id"])
            return
        opened = self._verification.box.open(base64.b64decode(payload["sealed"]), sealed_for(payload["id"]))
        message = json.loads(opened)
        to, code = message["to"], message["code"]
        channel = payload["channel"]
        if channel == "email":
            await mail.send(self._settings, mail.message(self._settings, to, _subject(code), _text(code)))
        elif channel == "sms":
            await self._send_sms(to, code)
        elif channel == "dev":
            log.warning("*** DEV CONTACT CODE (KAQUAN_DEV_CONTACT_CODES=1, never in production) %s: %s ***", to, code)
        else:
            raise ValueError(f"unknown buyer code channel {channel!r}")

    async def _send_sms(self, to: str, code: str) -> None:
        url = self._settings.sms_webhook_url
        if not url:
            raise LookupError("KAQUAN_SMS_WEBHOOK_URL is not set any more; the code waits for it")
        headers = {}
        if self._settings.sms_webhook_token:
            headers["Authorization"] = f"Bearer {self._settings.sms_webhook_token}"
        async with httpx.AsyncClient(transport=self._transport, timeout=SEND_TIMEOUT_S) as client:
            response = await client.post(url, json={"to": to, "text": _text(code)}, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"the SMS webhook answered {response.status_code}")


def _text(code: str) -> str:
    return (
        f"您的验证码是 {code}，10 分钟内有效。如非本人操作，请忽略。\n"
        f"Your verification code is {code}. It expires in 10 minutes. If you did not ask for it, ignore this."
    )


def _subject(code: str) -> str:
    return f"验证码 Verification code {code}"


_sender: CodeSender | None = None


def install(sender: CodeSender) -> None:
    """The sender this process's worker delivers codes with (set by runtime.start)."""
    global _sender
    _sender = sender


@outbox.handler(SEND_TOPIC)
async def send_code(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    if _sender is None:
        raise LookupError("no buyer code sender in this process")
    await _sender.send(payload)
