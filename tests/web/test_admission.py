"""A server process works on at most `sale_concurrency` sale-path requests at once; the others wait their turn,
in order of arrival, and every other route goes straight through."""

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from kaquan.web.admission import SaleAdmission


class HeldApp:
    """An app whose requests stay inside until released: it records which paths are inside, and in what order
    they came in."""

    def __init__(self) -> None:
        self.inside: list[str] = []
        self.entered: list[str] = []
        self.release = asyncio.Event()
        self.arrived = asyncio.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = f"{scope['path']}?{scope['query_string'].decode()}"
        async with self.arrived:
            self.inside.append(path)
            self.entered.append(path)
            self.arrived.notify_all()
        await self.release.wait()
        self.inside.remove(path)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def until_inside(self, count: int) -> None:
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.inside) >= count)


def client(app: SaleAdmission) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test")


async def test_at_most_the_limit_of_sale_requests_are_inside_and_the_rest_enter_in_order() -> None:
    held = HeldApp()
    async with client(SaleAdmission(held, limit=2)) as http:
        paths = [f"/api/orders?n={n}" for n in range(5)]
        sent = []
        for path in paths:
            sent.append(asyncio.create_task(http.post(path)))
            await asyncio.sleep(0)  # each request arrives before the next
        await held.until_inside(2)
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(held.inside) == 2

        held.release.set()
        answers = await asyncio.gather(*sent)

    assert [answer.status_code for answer in answers] == [200] * 5
    assert held.entered == paths


async def test_payment_notifications_and_lookups_share_the_queue() -> None:
    held = HeldApp()
    async with client(SaleAdmission(held, limit=1)) as http:
        first = asyncio.create_task(http.post("/payments/dev/notify"))
        await held.until_inside(1)
        second = asyncio.create_task(http.post("/api/orders/lookup"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert held.inside == ["/payments/dev/notify?"]

        held.release.set()
        await asyncio.gather(first, second)

    assert held.entered == ["/payments/dev/notify?", "/api/orders/lookup?"]


async def test_other_routes_are_not_queued() -> None:
    held = HeldApp()
    async with client(SaleAdmission(held, limit=1)) as http:
        sale = asyncio.create_task(http.post("/api/orders"))
        await held.until_inside(1)
        others = [asyncio.create_task(http.get(path)) for path in ("/healthz", "/shop", "/api/flash/1/purchase")]
        await held.until_inside(4)

        held.release.set()
        await asyncio.gather(sale, *others)
