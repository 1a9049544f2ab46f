"""Request bodies: refused unread when too large, or when an authenticated route's caller shows no credentials.

Each test sends its body as a stream that counts what the server pulls from it: a
refusal "before reading" is one that pulled nothing.
"""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.builders import given_sku
from tests.support.http import the_error
from tests.support.identity import HeadersFor

from kaquan.catalog.models import Product
from kaquan.inventory.models import Batch
from kaquan.runtime import Runtime
from kaquan.web.app import create_app
from kaquan.web.limits import upload_of

MiB = 2**20
CHUNK = 64 * 1024


class CountingBody:
    """A request body of `size` bytes produced on demand; `pulled` says how much of it the server read."""

    def __init__(self, size: int, prefix: bytes = b"", suffix: bytes = b"") -> None:
        self.size = size
        self.prefix = prefix
        self.suffix = suffix
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks():
            self.pulled += len(chunk)
            yield chunk

    def _chunks(self) -> Iterator[bytes]:
        yield self.prefix
        filler = self.size - len(self.prefix) - len(self.suffix)
        while filler > 0:
            yield b" " * min(CHUNK, filler)
            filler -= CHUNK
        yield self.suffix


def multipart(boundary: str, size: int) -> CountingBody:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="codes.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    return CountingBody(size, head, f"\r\n--{boundary}--\r\n".encode())


async def products(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(Product))).scalar_one())


async def batches(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(Batch))).scalar_one())


async def test_a_200_mb_json_body_without_credentials_is_refused_before_a_byte_is_read(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    body = CountingBody(200 * MiB, b'{"name": "')
    response = await client.post("/admin/api/products", content=body, headers={"Content-Type": "application/json"})
    the_error(response, 401, "unauthorized")
    assert body.pulled == 0
    assert await products(rt) == 0


@pytest.mark.parametrize(
    "path",
    ["/admin/api/products", "/admin/products", "/admin/api/agents/1/topups", "/admin/api/skus/X/batches"],
)
async def test_every_unsafe_admin_request_without_credentials_is_refused_unread(
    client: httpx.AsyncClient, path: str
) -> None:
    body = CountingBody(MiB)
    response = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    the_error(response, 401, "unauthorized")
    assert body.pulled == 0


async def test_a_signed_api_request_without_signature_headers_is_refused_unread(client: httpx.AsyncClient) -> None:
    body = CountingBody(MiB)
    response = await client.post("/open/v1/orders", content=body, headers={"Content-Type": "application/json"})
    the_error(response, 401, "missing_signature_header")
    assert body.pulled == 0


async def test_a_body_declared_larger_than_the_cap_is_refused_at_once(
    client: httpx.AsyncClient, rt: Runtime, admin_headers: dict[str, str]
) -> None:
    body = CountingBody(2 * MiB)
    headers = {**admin_headers, "Content-Type": "application/json", "Content-Length": str(2 * MiB)}
    response = await client.post("/admin/api/products", content=body, headers=headers)
    assert the_error(response, 413, "payload_too_large") == {"max_bytes": rt.settings.max_body_kb * 1024}
    assert body.pulled == 0
    assert await products(rt) == 0


async def test_a_streamed_body_is_read_no_further_than_the_cap(
    client: httpx.AsyncClient, rt: Runtime, admin_headers: dict[str, str]
) -> None:
    """Chunked (no Content-Length): the reading stops at the first chunk past the cap."""
    body = CountingBody(200 * MiB, b'{"name": "')
    headers = {**admin_headers, "Content-Type": "application/json"}
    response = await client.post("/admin/api/products", content=body, headers=headers)
    the_error(response, 413, "payload_too_large")
    assert rt.settings.max_body_kb * 1024 < body.pulled <= rt.settings.max_body_kb * 1024 + CHUNK
    assert await products(rt) == 0


async def test_the_same_cap_holds_for_routes_that_read_their_own_body(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """The open API reads `request.body()` itself (to check the signature): the stream is capped all the same."""
    body = CountingBody(200 * MiB)
    signed = {"X-Kq-Key": "k", "X-Kq-Timestamp": "1", "X-Kq-Nonce": "n" * 16, "X-Kq-Signature": "s"}
    response = await client.post("/open/v1/orders", content=body, headers=signed)
    the_error(response, 413, "payload_too_large")
    assert body.pulled <= 1024 * 1024 + CHUNK


async def test_an_upload_with_a_bogus_token_is_refused_before_the_file_is_read(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    sku = await given_sku(rt)
    body = multipart("b0undary", 300 * MiB)
    response = await client.post(
        f"/admin/api/skus/{sku.code}/batches",
        content=body,
        headers={"Authorization": "Bearer kqa_not-a-token", "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    the_error(response, 401, "unauthorized")
    assert body.pulled == 0
    assert await batches(rt) == 0


async def test_an_upload_without_the_permission_is_refused_before_the_file_is_read(
    client: httpx.AsyncClient, rt: Runtime, headers_for: HeadersFor
) -> None:
    sku = await given_sku(rt)
    body = multipart("b0undary", 300 * MiB)
    headers = {**await headers_for("support"), "Content-Type": "multipart/form-data; boundary=b0undary"}
    response = await client.post(f"/admin/api/skus/{sku.code}/batches", content=body, headers=headers)
    assert the_error(response, 403, "forbidden") == {"permission": "stock.write"}
    assert body.pulled == 0


async def test_an_upload_past_its_configured_cap_is_refused_and_imports_nothing(
    client: httpx.AsyncClient, rt: Runtime, admin_headers: dict[str, str]
) -> None:
    rt.settings.max_upload_mb = 1
    sku = await given_sku(rt)
    body = multipart("b0undary", 3 * MiB)
    headers = {**admin_headers, "Content-Type": "multipart/form-data; boundary=b0undary"}
    response = await client.post(f"/admin/api/skus/{sku.code}/batches", content=body, headers=headers)
    assert the_error(response, 413, "payload_too_large") == {"max_bytes": MiB}
    assert body.pulled <= MiB + CHUNK
    assert await batches(rt) == 0


async def test_an_upload_within_its_cap_larger_than_a_json_body_is_imported(
    client: httpx.AsyncClient, rt: Runtime, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku(rt)
    lines = "".join(f"CODE{n:012d}\n" for n in range(80_000))  # ~1.3 MiB: past the JSON cap, far below the upload cap
    response = await client.post(
        f"/admin/api/skus/{sku.code}/batches", files={"file": ("codes.txt", lines)}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 80_000


async def test_anonymous_routes_still_take_their_small_bodies(client: httpx.AsyncClient) -> None:
    """Signing in carries no credential yet: it is refused for a wrong password, not for a missing token."""
    response = await client.post("/admin/api/session", json={"username": "nobody", "password": "wrong"})
    the_error(response, 401, "login_failed")


def test_every_route_taking_a_file_gets_the_upload_cap_only_after_verification() -> None:
    """A new upload route must be listed in limits.UPLOADS (else its files are capped at the JSON size)."""
    document = create_app().openapi()
    taking_files = [
        path.replace("{sku}", "SKU-1").replace("{product_id}", "1")
        for path, item in document["paths"].items()
        if "multipart/form-data" in item.get("post", {}).get("requestBody", {}).get("content", {})
    ]
    # code imports (API, console, console with progress), leak tracing, statements, product images (API and
    # console), marketplace order files
    assert len(taking_files) == 10
    assert [path for path in taking_files if upload_of("POST", path) is None] == []
