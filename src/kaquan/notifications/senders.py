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

from kaquan.channels.callbacks import signing, ssrf
from kaquan.channels.callbacks.errors import CallbackUrlRefused
from kaquan.kit import clock, mail
from kaquan.kit.config import Settings
from kaquan.notifications.messages import Notice

SEND_TIMEOUT_S = 10.0
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
        target = await ssrf.check(url, allow_private=settings.sms_webhook_allow_private)
    except CallbackUrlRefused as exc:
        raise WebhookRefused(exc.reason) from None
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signing.signed_headers([secret], key, int(clock.now().timestamp()), body),
    }
    async with httpx.AsyncClient(transport=transport, timeout=SEND_TIMEOUT_S) as client:
        status = await _post(client, target, headers, body)
    if not 200 <= status < 300:
        raise WebhookRefused(f"the SMS webhook answered {status}")


async def _post(client: httpx.AsyncClient, target: ssrf.Target, headers: dict[str, str], body: bytes) -> int:
    """POST to the first checked address that takes the connection; the status code."""
    *others, last = target.addresses
    for address in others:
        try:
            return await _post_to(client, target.pinned(address), headers, body)
        except httpx.ConnectError:
            continue
    return await _post_to(client, target.pinned(last), headers, body)


async def _post_to(client: httpx.AsyncClient, pinned: ssrf.Pinned, headers: dict[str, str], body: bytes) -> int:
    response = await client.post(
        pinned.url,
        content=body,
        headers={**headers, **pinned.headers},
        extensions=pinned.extensions,
        follow_redirects=False,
    )
    return response.status_code
