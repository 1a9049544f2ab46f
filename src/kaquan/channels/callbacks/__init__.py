"""Signed callbacks (webhooks) to agents, delivered by `kaquan worker` from their own transactional outbox.

Wire format (Standard Webhooks, https://www.standardwebhooks.com)
------------------------------------------------------------------
Each event is one `POST` to the agent's callback URL with a JSON body::

    {"id": "evt_<32 hex>", "type": "order.delivered", "timestamp": "2026-11-25T08:00:00.123Z", "data": {"order": {...}}}

`timestamp` is when the event happened (UTC); the body is byte-for-byte the
same on every try. The headers are::

    content-type: application/json
    webhook-id: evt_<32 hex>                       (the same as the body's "id", on every try and replay)
    webhook-timestamp: 1795680000                  (unix seconds when this try was sent)
    webhook-signature: v1,<base64 HMAC-SHA256>     (space-separated entries; two during a secret rotation)

The signature is HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{raw body}`
under the key that is the base64-decoded part of the secret after `whsec_`. The
secret (`whsec_` + base64 of 32 random bytes) is shown once, when the URL is set;
setting the URL again rotates it, and for 24 hours callbacks carry a second
signature under the previous secret, so a receiver may switch at its own pace.
Receivers verify with `signing.verify_signature(secret, headers, body)`:
refuse a bad signature or a timestamp more than 5 minutes away from now, and
process each `webhook-id` once.

Answers: any 2xx marks the event delivered (the body is not read). 410 Gone
disables the endpoint and cancels its pending events (setting the URL again
enables it). Anything else (another status, a redirect, which is not
followed, a timeout after 10 s, a connection error) is retried with
exponential backoff: 5 s doubling up to 1 hour, with jitter, for 3 days after
the event (or after a manual replay), the last try at the end of that window;
then the event is `failed`. After 5 failures in a row the endpoint's circuit
breaker pauses it (30 s, doubling up to 1 hour); then one event probes it, and
events whose window closed while the breaker was open fail without another try.
Events are sent concurrently: their order of arrival is not guaranteed.

Callback URLs are http(s) without credentials, and every address their host
resolves to must be public (no loopback, private, link-local, multicast,
reserved or unspecified address, IPv4-mapped IPv6 included), checked when the
URL is set and again on every send, unless `KAQUAN_CALLBACKS_ALLOW_PRIVATE`.

Modules: `service` (endpoints, `notify`, `replay`, admin queries), `sender`
(`deliver_due`, the worker step), `signing`, `ssrf`, `models`, `errors`. The public surface is
what this package exports (webhook `signing` and the `ssrf` guard are also used by
notifications' SMS webhook); other modules use only that.
"""

from kaquan.channels.callbacks import signing, ssrf
from kaquan.channels.callbacks.errors import CallbackUrlRefused
from kaquan.channels.callbacks.sender import run_due
from kaquan.channels.callbacks.service import (
    DeliveryDetail,
    delivery_detail,
    get_endpoint,
    list_deliveries,
    notify,
    notify_many,
    redacted,
    remove_endpoint,
    replay,
    set_endpoint,
)
from kaquan.channels.callbacks.webhook import post_signed

__all__ = [
    "CallbackUrlRefused",
    "DeliveryDetail",
    "delivery_detail",
    "get_endpoint",
    "list_deliveries",
    "notify",
    "notify_many",
    "post_signed",
    "redacted",
    "remove_endpoint",
    "replay",
    "run_due",
    "set_endpoint",
    "signing",
    "ssrf",
]
