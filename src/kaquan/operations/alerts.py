"""Sending operator alerts (raised with `kit.alerts.raise_alert`) by e-mail and to a webhook.

Each `operator.alert` outbox event carries one channel: a failed send raises, and the outbox retries
that event with its backoff without sending the other channel twice. The e-mail goes to
`KAQUAN_ALERT_EMAIL` through the SMTP server of the buyers' mail, its Message-ID following the
alert's key (a copy re-sent after a crash is recognisably the same). The webhook gets JSON
`{"id", "kind", "subject", "text", "facts", "raised_at"}`, signed the Standard Webhooks way under
`KAQUAN_ALERT_WEBHOOK_SECRET`, and its URL is checked like an agent's callback URL (public addresses
only unless `KAQUAN_ALERT_WEBHOOK_ALLOW_PRIVATE`).

A stalled worker cannot send its own alert: `worker_stale` is raised by the probe (`/readyz`) that
notices it and sent there and then, once per interval across every process.
"""

import json
import logging
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels.callbacks import CallbackUrlRefused, post_signed
from kaquan.kit import alerts, clock, mail, outbox
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.operations.alert_messages import AlertText, alert_text

log = logging.getLogger("kaquan.alerts")
USER_AGENT = "kaquan-alerts/1"

_settings: Settings | None = None


class AlertWebhookRefused(RuntimeError):
    """The alert webhook answered other than 2xx, or its URL is refused (a private address, say)."""


def channels(settings: Settings) -> tuple[str, ...]:
    """The channels the settings configure: e-mail needs recipients and an SMTP server, the webhook a secret."""
    found: list[str] = []
    if settings.alert_email and settings.smtp_host:
        found.append("email")
    if settings.alert_webhook_url and settings.alert_webhook_secret:
        found.append("webhook")
    return tuple(found)


def install(settings: Settings) -> None:
    """Route this process's alerts by `settings` (runtime.start calls it)."""
    global _settings
    _settings = settings
    alerts.configure(alerts.Routing(channels(settings), timedelta(minutes=settings.alert_interval_minutes)))


def _installed() -> Settings:
    if _settings is None:
        raise LookupError("no alert settings in this process")
    return _settings


def words(settings: Settings, kind: str, facts: dict[str, Any]) -> AlertText:
    return alert_text(kind, facts, settings.alert_language, shop=settings.notify_shop_name)


@outbox.handler(alerts.TOPIC)
async def send_alert(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    settings = _installed()
    await send(settings, payload["channel"], payload)


async def send(
    settings: Settings, channel: str, payload: dict[str, Any], *, transport: httpx.AsyncBaseTransport | None = None
) -> None:
    text = words(settings, payload["kind"], payload["facts"])
    if channel == "email":
        await _send_mail(settings, payload["key"], text)
    elif channel == "webhook":
        await _send_webhook(settings, payload, text, transport=transport)
    else:
        raise LookupError(f"unknown alert channel {channel!r}")
    log.info("alert %s sent by %s", payload["key"], channel)


async def _send_mail(settings: Settings, key: str, text: AlertText) -> None:
    _, _, domain = settings.smtp_from.rpartition("@")
    message_id = f"<alert.{key.replace(':', '.')}@{domain.strip(' >') or 'kaquan.local'}>"
    recipients = ", ".join(part.strip() for part in (settings.alert_email or "").split(",") if part.strip())
    await mail.send(settings, mail.message(settings, recipients, text.subject, text.text, message_id=message_id))


async def _send_webhook(
    settings: Settings, payload: dict[str, Any], text: AlertText, *, transport: httpx.AsyncBaseTransport | None
) -> None:
    url, secret = settings.alert_webhook_url, settings.alert_webhook_secret
    if not url or not secret:
        raise LookupError("KAQUAN_ALERT_WEBHOOK_URL and KAQUAN_ALERT_WEBHOOK_SECRET are needed for webhook alerts")
    body = json.dumps(
        {
            "id": payload["key"],
            "kind": payload["kind"],
            "subject": text.subject,
            "text": text.text,
            "facts": payload["facts"],
            "raised_at": payload["raised_at"],
        },
        ensure_ascii=False,
    ).encode()
    try:
        status = await post_signed(
            url,
            secret,
            payload["key"],
            body,
            allow_private=settings.alert_webhook_allow_private,
            user_agent=USER_AGENT,
            transport=transport,
        )
    except CallbackUrlRefused as exc:
        raise AlertWebhookRefused(exc.reason) from None
    if not 200 <= status < 300:
        raise AlertWebhookRefused(f"the alert webhook answered {status}")


async def worker_stale(db: Database, settings: Settings, *, age_s: int, max_age_s: int) -> bool:
    """Alert now that the worker has not finished a pass for `age_s` seconds; True when this call sent it.

    Recorded first (committed), so of every process probing at once exactly one sends per interval;
    a send that fails is logged and tried again by the next probe after the interval.
    """
    if not channels(settings):
        return False
    facts = {"age_s": age_s, "max_age_s": max_age_s}
    async with db.transaction() as session:
        key = await alerts.claim(db, session, "worker_stale", "worker", facts)
    if key is None:
        return False
    raised_at = clock.now().isoformat()
    for channel in channels(settings):
        try:
            await send(settings, channel, {"key": key, "kind": "worker_stale", "facts": facts, "raised_at": raised_at})
        except Exception as exc:  # the probe must answer whatever the mail server does
            log.warning("alert %s not sent by %s: %s", key, channel, type(exc).__name__)
    return True
