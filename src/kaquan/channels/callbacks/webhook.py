"""One signed POST to an operator-configured webhook (SMS bridge, operator alerts): the URL checked against
private addresses (`ssrf`), the connection pinned to a checked address, the body signed the Standard Webhooks
way under `secret` (`signing`), redirects not followed. Agents' callbacks have their own sender with retries
and endpoint state (`sender`)."""

import httpx

from kaquan.channels.callbacks import signing, ssrf
from kaquan.kit import clock

SEND_TIMEOUT_S = 10.0


async def post_signed(
    url: str,
    secret: str,
    message_id: str,
    body: bytes,
    *,
    allow_private: bool,
    user_agent: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """The receiver's status code; `CallbackUrlRefused` when the URL may not be called."""
    target = await ssrf.check(url, allow_private=allow_private)
    headers = {
        "content-type": "application/json",
        "user-agent": user_agent,
        **signing.signed_headers([secret], message_id, int(clock.now().timestamp()), body),
    }
    async with httpx.AsyncClient(transport=transport, timeout=SEND_TIMEOUT_S) as client:
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
