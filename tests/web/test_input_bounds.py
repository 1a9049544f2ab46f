"""Odd integers get a 4xx in the one error shape, never a 500: every integer input is bounded by the schema.

SQLite holds 64-bit integers, PostgreSQL's `integer` columns 32 bits; a value past
either used to fail inside the database driver.
"""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.agents import given_agent
from tests.support.builders import given_sku_with_codes
from tests.support.http import the_error

from kaquan.catalog.models import Sku
from kaquan.client.wire import Credentials, encode_query
from kaquan.inventory.models import Warehouse
from kaquan.kit.bounds import INT64_MAX, INT64_MIN
from kaquan.orders.models import Order
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

HUGE = 2**70
PAST_64_BITS = 2**63
PAST_32_BITS = 2**31

ORDER_HEADERS = {"Idempotency-Key": "k-1", "X-Client-Token": "a-client-token-of-its-own"}


async def count(rt: Runtime, model: type[Order] | type[Sku]) -> int:
    async with rt.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def _unbounded(schema: dict[str, Any], components: dict[str, Any], seen: frozenset[str]) -> list[str]:
    """The integer schemas under `schema` that lack a lower or upper bound inside 64 bits.

    pydantic writes a model field's bounds as JSON numbers (floats): 2**63 - 1 reads as 2**63
    there, while the server still validates the exact integer.
    """
    if "$ref" in schema:
        name = schema["$ref"].rpartition("/")[2]
        return [] if name in seen else _unbounded(components[name], components, seen | {name})
    found = []
    if schema.get("type") == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if low is None or high is None or low < float(INT64_MIN) or high > float(INT64_MAX):
            found.append(str(schema))
    parts = [*schema.get("anyOf", []), *schema.get("oneOf", []), *schema.get("allOf", [])]
    parts += list(schema.get("properties", {}).values())
    parts += [schema[key] for key in ("items", "additionalProperties") if isinstance(schema.get(key), dict)]
    for part in parts:
        found += _unbounded(part, components, seen)
    return found


def test_every_integer_a_client_can_send_is_bounded_in_the_published_schema() -> None:
    document = create_app().openapi()
    components = document["components"]["schemas"]
    unbounded = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            inputs = [(f"{p['in']} {p['name']}", p["schema"]) for p in operation.get("parameters", [])]
            inputs += [("body", m["schema"]) for m in operation.get("requestBody", {}).get("content", {}).values()]
            for where, schema in inputs:
                unbounded += [
                    f"{method.upper()} {path} {where}: {s}" for s in _unbounded(schema, components, frozenset())
                ]
    assert unbounded == []


def test_validation_errors_are_documented_in_the_shape_they_are_sent() -> None:
    document = create_app().openapi()
    answer = document["paths"]["/api/orders"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/ErrorBody"}
    assert document["components"]["schemas"]["ErrorBody"]["required"] == ["error"]


@pytest.mark.parametrize("sku", ["²", "١", str(HUGE), str(PAST_64_BITS), str(PAST_32_BITS)])
async def test_an_order_for_a_sku_no_row_can_have_is_not_found(
    client: httpx.AsyncClient, rt: Runtime, sku: str
) -> None:
    await given_sku_with_codes(rt, 3)
    response = await client.post(
        "/api/orders",
        json={"sku": sku, "quantity": 1},
        headers=ORDER_HEADERS,
    )
    the_error(response, 404, "sku_not_found")
    assert await count(rt, Order) == 0


@pytest.mark.parametrize(
    ("quantity", "status", "code"),
    [
        (HUGE, 422, "validation_error"),
        (PAST_64_BITS, 422, "validation_error"),
        (-PAST_64_BITS - 1, 422, "validation_error"),
        (PAST_32_BITS, 400, "invalid_quantity"),
    ],
)
async def test_an_order_for_an_impossible_quantity_is_refused(
    client: httpx.AsyncClient, rt: Runtime, quantity: int, status: int, code: str
) -> None:
    """Past 64 bits the schema refuses it; within, the SKU's cap does, before any query."""
    sku = await given_sku_with_codes(rt, 3)
    response = await client.post(
        "/api/orders",
        json={"sku": sku.code, "quantity": quantity},
        headers=ORDER_HEADERS,
    )
    the_error(response, status, code)
    assert await count(rt, Order) == 0


@pytest.mark.parametrize("event_id", [PAST_32_BITS, PAST_64_BITS, HUGE, 0])
async def test_a_flash_sale_id_no_row_can_have_is_refused(client: httpx.AsyncClient, event_id: int) -> None:
    the_error(await client.get(f"/api/flash/{event_id}"), 422, "validation_error")
    response = await client.post(
        f"/api/flash/{event_id}/purchase", json={"buyer": "ann", "quantity": 1, "request_id": "r"}
    )
    the_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/admin/api/agents/{PAST_64_BITS}"),
        ("GET", f"/admin/api/agents/{PAST_32_BITS}/keys"),
        ("GET", f"/admin/api/agents/1/ledger?after_id={HUGE}"),
        ("POST", f"/admin/api/users/{HUGE}/disable"),
        ("DELETE", f"/admin/api/tokens/{PAST_64_BITS}"),
        ("GET", f"/admin/api/flash/events/{PAST_32_BITS}"),
        ("POST", f"/admin/api/refill-rules/{PAST_64_BITS}/disable"),
        ("GET", f"/admin/api/callbacks/deliveries/{PAST_64_BITS}"),
        ("GET", f"/admin/api/callbacks/deliveries?before_id={PAST_64_BITS}"),
        ("GET", f"/admin/api/callbacks/deliveries?agent_id={PAST_32_BITS}"),
        ("GET", f"/admin/api/audit?before_id={HUGE}"),
        ("GET", f"/admin/audit?before_id={HUGE}"),
        ("POST", f"/admin/batches/{PAST_64_BITS}/quarantine"),
    ],
)
async def test_admin_ids_and_cursors_past_their_column_are_refused_by_the_schema(
    client: httpx.AsyncClient, admin_headers: dict[str, str], method: str, path: str
) -> None:
    response = await client.request(method, path, headers=admin_headers)
    the_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    "change",
    [{"price_minor": PAST_32_BITS}, {"face_value_minor": HUGE}, {"product_id": PAST_32_BITS}],
    ids=["price", "face-value", "product-id"],
)
async def test_a_sku_whose_numbers_its_columns_cannot_hold_is_refused(
    client: httpx.AsyncClient, rt: Runtime, admin_headers: dict[str, str], change: dict[str, int]
) -> None:
    product = await client.post("/admin/api/products", json={"name": "P", "kind": "voucher"}, headers=admin_headers)
    body = {"product_id": product.json()["id"], "code": "BIG", "name": "Big", "face_value_minor": 1, "price_minor": 1}
    response = await client.post("/admin/api/skus", json={**body, **change}, headers=admin_headers)
    the_error(response, 422, "validation_error")
    assert await count(rt, Sku) == 0


async def test_a_transfer_of_a_sku_id_past_64_bits_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {"sku": HUGE, "from_warehouse": "main", "to_warehouse": "main", "units": 1, "reason": "r"}
    the_error(await client.post("/admin/api/transfers", json=body, headers=admin_headers), 422, "validation_error")


@pytest.mark.parametrize("cursor", ["9" * 30, str(PAST_64_BITS), "²", "-1", "1e3"])
@pytest.mark.parametrize("path", ["/open/v1/orders", "/open/v1/ledger"])
async def test_an_open_api_cursor_that_names_no_row_is_bad_input(
    client: httpx.AsyncClient, rt: Runtime, path: str, cursor: str
) -> None:
    agent = await given_agent(rt)
    query = encode_query([("since", "2026-01-01T00:00:00Z"), ("until", "2027-01-01T00:00:00Z"), ("cursor", cursor)])
    request = client.build_request("GET", f"{path}?{query}")
    Credentials(agent.key_id, agent.secret).sign(request)
    details = the_error(await client.send(request), 400, "bad_input")
    assert details["field"] == "cursor"


async def test_text_postgresql_cannot_hold_is_bad_input_there_never_a_crash(
    client: httpx.AsyncClient, rt: Runtime, admin_headers: dict[str, str]
) -> None:
    """A NUL character: SQLite stores it, PostgreSQL refuses it, as 400 `bad_input` with nothing stored."""
    response = await client.post(
        "/admin/api/warehouses", json={"code": "nul", "name": "NUL\x00"}, headers=admin_headers
    )
    lookup = await client.get("/admin/api/orders/26%0011", headers=admin_headers)
    async with rt.db.read() as session:
        stored = (await session.execute(select(func.count()).where(Warehouse.code == "nul"))).scalar_one()
    if rt.db.is_postgresql:
        the_error(response, 400, "bad_input")
        the_error(lookup, 400, "bad_input")
        assert stored == 0
    else:
        assert response.status_code == 201, response.text
        the_error(lookup, 404, "order_not_found")
        assert stored == 1
