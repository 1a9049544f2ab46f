"""A live flash sale's purchases are taken in front of FastAPI's stack, answered exactly as the route answers them."""

import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from tests.support.builders import given_sku_with_codes
from tests.support.flash import a_device, given_event

from kaquan.flashsale.purchase import FlashSale
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

# What differs from one purchase to the next, whichever path took it.
VOLATILE = {"order_no", "lookup_secret", "pay_url", "pay_before", "request_id", "ticket"}


def purchase(buyer: str, quantity: int = 1) -> dict[str, object]:
    return {"buyer": buyer, "quantity": quantity, "request_id": secrets.token_hex(8)}


@pytest.fixture
async def route_only(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The same app, entered at FastAPI's own `__call__`: no layer in front of the router."""
    app = create_app(rt=rt)

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app
        await FastAPI.__call__(app, scope, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=router), base_url="http://shop.test") as client:
        yield client


def stable(response: httpx.Response) -> tuple[int, str, str | None]:
    """Status, body and Retry-After, without what differs between two purchases (numbers: two events' ids, times)."""
    body = response.json()
    inner = body.get("error", body)
    kept = {key: value for key, value in inner.items() if key not in VOLATILE}
    return (
        response.status_code,
        re.sub(r"[0-9]+", "#", json.dumps(kept, sort_keys=True)),
        response.headers.get("retry-after"),
    )


Scenario = Callable[[Runtime], Awaitable[tuple[str, dict[str, object]]]]


async def live(rt: Runtime) -> tuple[str, dict[str, object]]:
    event_id = await given_event(rt, await given_sku_with_codes(rt, 3), stock=2)
    return f"/api/flash/{event_id}/purchase", purchase("ann")


async def not_started(rt: Runtime) -> tuple[str, dict[str, object]]:
    event_id = await given_event(rt, await given_sku_with_codes(rt, 3), stock=2, starts_in_s=600)
    return f"/api/flash/{event_id}/purchase", purchase("ann")


async def beyond_the_limit(rt: Runtime) -> tuple[str, dict[str, object]]:
    event_id = await given_event(rt, await given_sku_with_codes(rt, 3), stock=2, limit=1)
    return f"/api/flash/{event_id}/purchase", purchase("ann", quantity=2)


async def another_channels(rt: Runtime) -> tuple[str, dict[str, object]]:
    event_id = await given_event(rt, await given_sku_with_codes(rt, 3), stock=2, channel="agents")
    return f"/api/flash/{event_id}/purchase", purchase("ann")


async def verified_only(rt: Runtime) -> tuple[str, dict[str, object]]:
    event_id = await given_event(rt, await given_sku_with_codes(rt, 3), stock=2, verified=True)
    return f"/api/flash/{event_id}/purchase", purchase("ann")


async def unknown(rt: Runtime) -> tuple[str, dict[str, object]]:
    return "/api/flash/987654/purchase", purchase("ann")


@pytest.mark.parametrize("scenario", [live, not_started, beyond_the_limit, another_channels, verified_only, unknown])
async def test_each_purchase_is_answered_as_the_route_answers_it(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient, route_only: httpx.AsyncClient, scenario: Scenario
) -> None:
    front_path, front_body = await scenario(rt)
    route_path, route_body = await scenario(rt)  # an event of its own, set up alike

    through_front = await client.post(front_path, json=front_body, headers={"X-Device-Token": a_device()})
    through_route = await route_only.post(route_path, json=route_body, headers={"X-Device-Token": a_device()})

    assert stable(through_front) == stable(through_route)
    assert through_front.headers["content-type"] == through_route.headers["content-type"]
    assert through_front.headers["x-frame-options"] == "DENY"  # inside SecurityMiddleware
    assert "x-request-id" in through_front.headers


async def test_a_live_events_purchase_skips_fastapis_stack_and_what_it_cannot_take_reaches_the_route(
    rt: Runtime, flash: FlashSale, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[str] = []
    fastapi_call = FastAPI.__call__

    async def watched(app: FastAPI, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reached.append(scope["path"])
        await fastapi_call(app, scope, receive, send)

    monkeypatch.setattr(FastAPI, "__call__", watched)
    app = create_app(rt=rt)  # a fresh app: it finds the watched __call__ when it builds its layers
    path, body = await live(rt)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as client:
        won = await client.post(path, json=body, headers={"X-Device-Token": a_device()})
        cookieless = await client.post(path, json=purchase("bob"))
        odd_shape = await client.post(
            path, json={**purchase("cat"), "coupon": "x"}, headers={"X-Device-Token": a_device()}
        )

    assert won.json()["result"] == "won"
    assert cookieless.json()["result"] == "won" and "kq_device" in cookieless.headers["set-cookie"]
    assert odd_shape.status_code == 422
    assert reached == [path, path]  # the cookieless purchase (the route sets the cookie) and the odd one
