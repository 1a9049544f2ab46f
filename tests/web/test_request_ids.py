"""Every answer names its request: the `X-Request-ID` header, the JSON error body and the log lines agree."""

import json
import logging

import httpx
import pytest
from tests.support.http import the_error

from kaquan.kit import logs


async def test_every_answer_carries_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")

    assert len(first.headers["x-request-id"]) == 16
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_an_error_body_names_the_request_a_plain_caller_id_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/orders/NOPE", headers={"X-Request-ID": "lb-abc.123_XYZ"})

    assert response.headers["x-request-id"] == "lb-abc.123_XYZ"
    the_error(response, 404, response.json()["error"]["code"])
    assert response.json()["error"]["request_id"] == "lb-abc.123_XYZ"


@pytest.mark.parametrize("offered", ["short", "x" * 65, "bad id with spaces", "evil\u2028line", 'a"quote'])
async def test_a_caller_id_of_another_shape_is_replaced(client: httpx.AsyncClient, offered: str) -> None:
    response = await client.get("/healthz", headers={b"X-Request-ID": offered.encode()})

    assert response.headers["x-request-id"] != offered
    assert len(response.headers["x-request-id"]) == 16


async def test_the_access_log_line_carries_the_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(logs.RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="kaquan.access"):
        response = await client.get("/healthz")

    formatted = [json.loads(logs.JsonFormatter().format(record)) for record in caplog.records]
    assert response.headers["x-request-id"] in [entry["request_id"] for entry in formatted]
