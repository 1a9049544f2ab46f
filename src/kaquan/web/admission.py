"""How many sale-path requests a server process works on at once; the others wait their turn, in order.

Under a storm every buyer's request arrives at once. Let in together, 200 requests share one event loop
and one pool of database connections: a request holding a connection in the middle of its transaction
waits for its next turn behind the Python of all the others (`kaquan bench shop` saw 12 of 20
connections *idle in transaction* on average), the pool runs dry, and requests that wait 30 s for a
connection fail with 500. Admitted a few at a time, each runs its transaction through without waiting
on the others, and the rest wait here, before any work is done for them: the same CPU serves them in
order of arrival instead of all of them a little at a time. The default (32) is a little more than the
pool's 20 connections, so that one request's Python overlaps another's round trip to the database.

Only the sale path is queued (`SALE_PATHS`: placing and looking up orders, payment notifications);
pages, the admin console, exports and the flash sale (which has its own gate) are not.
"""

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

SALE_PATHS = ("/api/orders", "/payments/")


class SaleAdmission:
    """Pure ASGI middleware: at most `limit` sale-path requests of this process inside the app at once."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self._slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(SALE_PATHS):
            await self.app(scope, receive, send)
            return
        async with self._slots:
            await self.app(scope, receive, send)
