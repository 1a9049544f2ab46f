"""The Stripe simulator's webhook deliveries: each built event posted to the one endpoint a merchant registers,
at once or in the background (as Stripe delivers what follows a merchant's own request), and remembered.

A delivery that fails to connect is recorded with status 0, as Stripe records a failed attempt.
"""

import asyncio

import httpx

from kaquan.payments.plugins import SentNotification

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


class WebhookPoster:
    """Posts signed events to `url` through `transport` (None: the network)."""

    def __init__(self, url: str, transport: httpx.AsyncBaseTransport | None) -> None:
        self.url = url
        self.transport = transport
        self._sent: list[SentNotification] = []
        self._deliveries: set[asyncio.Task[SentNotification]] = set()

    async def post(self, headers: dict[str, str], body: bytes) -> SentNotification:
        sent_headers = {**headers, "user-agent": USER_AGENT}
        async with httpx.AsyncClient(transport=self.transport, timeout=10.0) as client:
            try:
                answer = await client.post(self.url, content=body, headers=sent_headers)
                status, text = answer.status_code, answer.content
            except httpx.HTTPError as exc:  # Stripe records the failed delivery and retries later
                status, text = 0, type(exc).__name__.encode()
        sent = SentNotification(self.url, headers, body, status, text)
        self._sent.append(sent)
        return sent

    def post_later(self, headers: dict[str, str], body: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self.post(headers, body))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def drain(self) -> None:
        """Wait for the deliveries under way."""
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries))

    def sent(self) -> list[SentNotification]:
        return list(self._sent)
