"""Prometheus metrics: off unless a token is set, then requests by route template and the state of the shop."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.support.builders import buy, given_sku_with_codes
from tests.support.http import the_error

from kaquan.kit import outbox
from kaquan.kit.config import Settings
from kaquan.operations import beat
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

TOKEN = "scrape-" + "x" * 24


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": TOKEN})


@pytest.fixture
async def scraper(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    yield client


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        found = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if found and ",".join(sorted((found.group(1) or "").split(","))) == wanted:
            return float(found.group(2))
    raise AssertionError(f"no sample {name}{{{wanted}}}")


async def test_metrics_are_off_without_a_token(rt: Runtime) -> None:
    rt.settings.metrics_token = None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt=rt)), base_url="http://t") as client:
        the_error(await client.get("/metrics"), 404, "not_found")


async def test_a_wrong_or_missing_token_is_refused(client: httpx.AsyncClient) -> None:
    the_error(await client.get("/metrics"), 401, "unauthorized")
    the_error(await client.get("/metrics", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")


async def test_requests_are_counted_by_route_template_not_by_path(scraper: httpx.AsyncClient) -> None:
    for number in ("1001", "1002", "1003"):
        await scraper.get(f"/orders/{number}")
    await scraper.get("/no/such/page")

    text = (await scraper.get("/metrics")).text

    assert sample(text, "kaquan_http_requests_total", method="GET", route="/orders/{number}", status="303") >= 3
    assert sample(text, "kaquan_http_requests_total", method="GET", route="unmatched", status="404") >= 1
    assert "/orders/1001" not in text
    assert sample(text, "kaquan_http_request_duration_seconds_count", method="GET", route="/orders/{number}") >= 3


async def test_the_state_gauges_say_stock_backlog_and_worker_age(rt: Runtime, scraper: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 5, code="METRIC-1")
    assert (await buy(rt, sku, 2)).ok
    async with rt.db.transaction() as session:
        await outbox.enqueue(session, "test.nothing", {})
    await beat(rt.db)

    response = await scraper.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "kaquan_stock_available", sku="METRIC-1") == 3
    assert sample(text, "kaquan_outbox_pending") >= 1
    assert 0 <= sample(text, "kaquan_worker_heartbeat_age_seconds") < 60
    assert TOKEN not in text
