"""HEAD is answered as GET would be, without the body: `curl -I`, uptime monitors and link checkers."""

import logging

import httpx
import pytest
from tests.support.builders import given_sku_with_codes

from kaquan.runtime import Runtime


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/static/style.css"])
async def test_head_has_the_status_and_headers_of_get_and_no_body(client: httpx.AsyncClient, path: str) -> None:
    got = await client.get(path)
    head = await client.head(path)

    assert head.status_code == got.status_code
    assert head.content == b""
    for name in ("content-type", "content-length", "content-security-policy", "x-content-type-options"):
        assert head.headers.get(name) == got.headers.get(name), name


async def test_head_of_a_product_page_finds_it_and_of_an_unknown_one_is_404(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 1)

    found = await client.head(f"/products/{sku.product_id}")
    missing = await client.head("/products/999999")

    assert (found.status_code, found.content) == (200, b"")
    assert (
        found.headers["content-length"] == (await client.get(f"/products/{sku.product_id}")).headers["content-length"]
    )
    assert missing.status_code == 404


async def test_head_of_a_route_without_get_is_405_and_changes_nothing(client: httpx.AsyncClient) -> None:
    head = await client.head("/api/orders")

    assert head.status_code == 405
    assert "POST" in head.headers["allow"]


async def test_the_access_log_says_head(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kaquan.access"):
        await client.head("/healthz")

    assert any("HEAD /healthz" in record.getMessage() for record in caplog.records), [
        record.getMessage() for record in caplog.records
    ]
