"""HTTP test helpers: the one error shape, what a browser asks for, and clients from addresses of their own."""

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from kaquan.runtime import Runtime
from kaquan.web.app import create_app

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
Caller = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


def the_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape, `{"error": {"code", "message", "details"}}`; returns its details."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["request_id"] == response.headers["x-request-id"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in response.text
    details: dict[str, Any] = error["details"]
    assert isinstance(details, dict)
    return details


@pytest.fixture
def caller_at(rt: Runtime) -> Caller:
    """Another API client, connecting from its own IP address."""

    @asynccontextmanager
    async def open_client(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=create_app(rt=rt), client=(ip, 50_000))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
            yield http

    return open_client


def some_ip() -> str:
    """An address of this test's own: parallel runs sharing one Redis never share a counter."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def answer_without_request_id(response: httpx.Response) -> Any:
    """The JSON answer with its per-request id left out: what two answers compare equal on."""
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"].pop("request_id", None)
    return body
