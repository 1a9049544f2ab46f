"""Late buyers of a sold-out flash sale are answered in front of the router, exactly as the route would answer them;
everything the route answers differently still reaches it."""

import asyncio
import logging
import secrets

import httpx
import pytest
from tests.support.builders import given_sku_with_codes
from tests.support.flash import a_device, given_event
from tests.support.http import the_error

from kaquan.flashsale.purchase import FlashSale
from kaquan.runtime import Runtime
from kaquan.web.app import KaquanApp, create_app
from kaquan.web.metrics import REGISTRY

ROUTE = "/api/flash/{event_id}/purchase"


def purchase(buyer: str, request_id: str | None = None) -> dict[str, object]:
    return {"buyer": buyer, "quantity": 1, "request_id": request_id or secrets.token_hex(8)}


async def sold_out_event(rt: Runtime, flash: FlashSale, client: httpx.AsyncClient) -> tuple[int, str, dict[str, str]]:
    """An event of one unit, won by ann (returned: its id, ann's order number, ann's device header)."""
    sku = await given_sku_with_codes(rt, 2)
    event_id = await given_event(rt, sku, stock=1)
    ann = {"X-Device-Token": a_device()}
    won = await client.post(f"/api/flash/{event_id}/purchase", json=purchase("ann", "r1"), headers=ann)
    assert won.json()["result"] == "won", won.text
    late = await client.post(
        f"/api/flash/{event_id}/purchase", json=purchase("bob"), headers={"X-Device-Token": a_device()}
    )
    assert late.json() == {"result": "sold_out"}
    for _ in range(500):
        if flash.knows_sold_out(event_id):
            return event_id, won.json()["order_no"], ann
        await asyncio.sleep(0.01)
    raise AssertionError("the sold-out event was never known as such")


def answered_by_metrics() -> float:
    labels = {"method": "POST", "route": ROUTE, "status": "200"}
    return REGISTRY.get_sample_value("kaquan_http_requests_total", labels) or 0


async def test_a_late_buyer_is_answered_sold_out_without_the_route(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id, _, _ = await sold_out_event(rt, flash, client)

    async def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the route was asked")

    monkeypatch.setattr(flash, "purchase", never)
    counted = answered_by_metrics()
    late = await client.post(
        f"/api/flash/{event_id}/purchase",
        json=purchase("cat"),
        headers={"X-Device-Token": a_device(), "X-Request-ID": "late-buyer-0001"},
    )

    assert (late.status_code, late.json()) == (200, {"result": "sold_out"})
    assert late.headers["content-type"] == "application/json"
    assert late.headers["x-request-id"] == "late-buyer-0001"
    assert late.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" in late.headers
    assert answered_by_metrics() == counted + 1  # counted under the purchase route, as the route's answers are


async def test_what_the_route_answers_otherwise_still_reaches_the_route(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    event_id, order_no, ann = await sold_out_event(rt, flash, client)
    path = f"/api/flash/{event_id}/purchase"
    fresh = {"X-Device-Token": a_device()}

    retried = await client.post(path, json=purchase("ann", "r1"), headers=ann)
    again = await client.post(path, json=purchase("ann"), headers=fresh)
    extra = await client.post(path, json=purchase("dan") | {"coupon": "x"}, headers=fresh)
    text = await client.post(path, content=b"buyer=dan", headers=fresh | {"Content-Type": "text/plain"})
    huge = await client.post(
        path, json=purchase("dan") | {"pad": "x" * (rt.settings.max_body_kb * 1024)}, headers=fresh
    )
    cookieless = await client.post(path, json=purchase("eve"))

    assert (retried.json()["result"], retried.json()["order_no"]) == ("won", order_no)  # its order, not sold out
    assert again.json() == {"result": "limit_reached"}
    the_error(extra, 422, "validation_error")
    the_error(text, 415, "unsupported_media_type")
    the_error(huge, 413, "payload_too_large")
    assert cookieless.json() == {"result": "sold_out"}
    assert "kq_device" in cookieless.headers["set-cookie"]  # the route gave the new client its device cookie


async def test_a_unit_coming_back_ends_the_sold_out_answers_at_once(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    event_id, _, _ = await sold_out_event(rt, flash, client)
    await flash.reconcile(event_id)  # the database agrees: nothing held, nothing to announce
    assert flash.knows_sold_out(event_id)

    await rt.flash.end_event(event_id, actor="test")

    assert not flash.knows_sold_out(event_id)
    ended = await client.post(
        f"/api/flash/{event_id}/purchase", json=purchase("fay"), headers={"X-Device-Token": a_device()}
    )
    the_error(ended, 409, "event_ended")


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "kaquan.access"]


async def test_sold_out_answers_are_access_logged_as_one_summary_line(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    event_id, _, _ = await sold_out_event(rt, flash, client)
    app = create_app(rt=rt)
    assert isinstance(app, KaquanApp)
    path = f"/api/flash/{event_id}/purchase"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as http:
        with caplog.at_level(logging.INFO, logger="kaquan.access"):
            answers = [
                await http.post(path, json=purchase(f"late-{n}"), headers={"X-Device-Token": a_device()})
                for n in range(3)
            ]
            unrelated = await http.get("/healthz")
            assert [line.getMessage() for line in access_lines(caplog)] == [f'127.0.0.1 "GET /healthz" {200}']
            app.flush_access_summary()  # as the server does once a second, and when it stops

    assert [answer.json() for answer in answers] == [{"result": "sold_out"}] * 3
    assert len({answer.headers["x-request-id"] for answer in answers}) == 3  # every answer still carries its id
    assert unrelated.status_code == 200
    summary = access_lines(caplog)[-1]
    assert summary.getMessage().startswith(f'127.0.0.1 "POST {path}" 200 sold_out x3 in ')
    assert (summary.__dict__["answers"], summary.__dict__["addresses"]) == (3, 1)


async def test_sold_out_answers_can_be_access_logged_one_line_each(
    rt: Runtime,
    flash: FlashSale,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event_id, _, _ = await sold_out_event(rt, flash, client)
    monkeypatch.setattr(rt.settings, "access_log_sold_out", "each")
    path = f"/api/flash/{event_id}/purchase"

    with caplog.at_level(logging.INFO, logger="kaquan.access"):
        answers = [
            await client.post(path, json=purchase(f"late-{n}"), headers={"X-Device-Token": a_device()})
            for n in range(2)
        ]

    assert [answer.json() for answer in answers] == [{"result": "sold_out"}] * 2
    assert [line.getMessage() for line in access_lines(caplog)] == [f'127.0.0.1 "POST {path}" {200}'] * 2


async def test_a_sold_out_answer_over_tls_carries_hsts(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    event_id, _, _ = await sold_out_event(rt, flash, client)
    app = create_app(rt=rt)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://shop.test") as https:
        late = await https.post(
            f"/api/flash/{event_id}/purchase", json=purchase("gus"), headers={"X-Device-Token": a_device()}
        )

    assert late.json() == {"result": "sold_out"}
    assert late.headers["strict-transport-security"].startswith("max-age=")
    assert late.headers["x-content-type-options"] == "nosniff"
