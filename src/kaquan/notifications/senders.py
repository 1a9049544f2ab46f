"""Where a notice goes: an e-mail through SMTP, or a signed POST to the SMS webhook.

The webhook body is JSON `{"id", "to", "text", "kind", "order"}`, signed the
Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`,
HMAC-SHA256 under `KAQUAN_SMS_WEBHOOK_SECRET`), so the SMS bridge can tell kaquan's
requests from anyone's. The URL is checked before every send like an agent's
callback URL (channels.callbacks.ssrf): public addresses only unless
`KAQUAN_SMS_WEBHOOK_ALLOW_PRIVATE`, and the request goes to the address checked.
Every failure raises, and the outbox retries the event later.
"""

import json

import httpx

from kaquan.channels.callbacks import CallbackUrlRefused, post_signed
from kaquan.kit import mail
from kaquan.kit.config import Settings
from kaquan.notifications.messages import Notice

USER_AGENT = "kaquan-notifications/1"


class WebhookNotConfigured(LookupError):
    """KAQUAN_SMS_WEBHOOK_URL or its signing secret is not set: SMS notices wait for them."""


class WebhookRefused(RuntimeError):
    """The webhook answered other than 2xx, or its URL is refused (a private address, say)."""


async def send_mail(settings: Settings, to: str, notice: Notice, *, key: str) -> None:
    # The Message-ID follows the notice's key: a copy sent again after a crash is recognisably the same mail.
    message_id = f"<{key.replace(':', '.')}@{_domain(settings)}>"
    await mail.send(settings, mail.message(settings, to, notice.subject, notice.text, message_id=message_id))


def _domain(settings: Settings) -> str:
    _, _, address = settings.smtp_from.rpartition("@")
    return address.strip(" >") or "kaquan.local"


async def send_sms(
    settings: Settings,
    to: str,
    notice: Notice,
    *,
    key: str,
    kind: str,
    order: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    url, secret = settings.sms_webhook_url, settings.sms_webhook_secret
    if not url or not secret:
        raise WebhookNotConfigured("KAQUAN_SMS_WEBHOOK_URL and KAQUAN_SMS_WEBHOOK_SECRET are needed for SMS notices")
    body = json.dumps({"id": key, "to": to, "text": notice.short, "kind": kind, "order": order}).encode()
    try:
        status = await post_signed(
            url,
            secret,
            key,
            body,
            allow_private=settings.sms_webhook_allow_private,
            user_agent=USER_AGENT,
            transport=transport,
        )
    except CallbackUrlRefused as exc:
        raise WebhookRefused(exc.reason) from None
    if not 200 <= status < 300:
        raise WebhookRefused(f"the SMS webhook answered {status}")
