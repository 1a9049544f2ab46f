"""What /openapi.json publishes about the open API, its one time format, and the ledger as an agent reads it."""

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tests.support.agents import agent_client, given_agent, given_price
from tests.support.builders import given_sku_with_codes

from kaquan.channels.agents import refunds
from kaquan.channels.schemas import rfc3339
from kaquan.runtime import Runtime
from kaquan.settlement import FORMATS
from kaquan.web.open_api import CALLBACKS


@pytest.fixture
async def published(client: httpx.AsyncClient) -> dict[str, Any]:
    document: dict[str, Any] = (await client.get("/openapi.json")).json()
    return document


def open_operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, operations in document["paths"].items()
        if path.startswith("/open/v1/")
        for method, operation in operations.items()
    ]


def test_every_open_api_route_publishes_a_typed_answer_its_errors_and_the_signature(published: dict[str, Any]) -> None:
    operations = open_operations(published)
    assert len(operations) == 12
    files = {"/csv": "text/csv", "/xlsx": FORMATS["xlsx"][0], "/pdf": "application/pdf"}
    for name, operation in operations:
        success = [operation["responses"][status] for status in ("200", "201") if status in operation["responses"]]
        assert success, name
        for answer in success:
            media_type = next((media for ending, media in files.items() if name.endswith(ending)), None)
            if media_type is not None:  # a statement as a file
                assert answer["content"][media_type]["schema"] == {"type": "string"}, name
                continue
            assert answer["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/"), name
        for status in ("400", "401", "403", "422", "429", "503", *(("402", "409", "415") if "POST" in name else ())):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (name, status)
        assert operation["security"] == [{"KQ1-HMAC-SHA256": []}], name
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert headers == {"X-Kq-Timestamp", "X-Kq-Nonce", "X-Kq-Signature"}, name
    scheme = published["components"]["securitySchemes"]["KQ1-HMAC-SHA256"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-Kq-Key")


def test_the_bodies_of_the_order_routes_are_published_strict(published: dict[str, Any]) -> None:
    order = published["paths"]["/open/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    batch = published["paths"]["/open/v1/orders/batch"]["post"]["requestBody"]["content"]["application/json"]

    assert order["additionalProperties"] is False
    assert order["properties"]["quantity"]["type"] == "integer"
    assert order["properties"]["allow_partial"]["type"] == "boolean"
    assert set(order["required"]) == {"out_order_no", "sku", "quantity"}
    assert batch["schema"]["properties"]["orders"]["items"] == order


def test_the_callbacks_are_published_as_webhooks_with_the_order_without_codes(published: dict[str, Any]) -> None:
    schemas = published["components"]["schemas"]

    assert set(published["webhooks"]) == set(CALLBACKS)
    for hook in published["webhooks"].values():
        body = hook["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/CallbackEvent"}
        assert {p["name"] for p in hook["post"]["parameters"]} == {
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }
    assert schemas["OrderEventData"]["properties"]["order"] == {"$ref": "#/components/schemas/AgentOrderSummary"}
    assert "codes" not in schemas["AgentOrderSummary"]["properties"]
    assert "codes" in schemas["AgentOrderOut"]["properties"]
    assert schemas["OrdersPage"]["properties"]["orders"]["items"] == {"$ref": "#/components/schemas/AgentOrderSummary"}


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        (datetime(2026, 11, 25, 8, 0, tzinfo=UTC), "2026-11-25T08:00:00.000Z"),
        (datetime(2026, 11, 25, 7, 0, 46, 560253, tzinfo=UTC), "2026-11-25T07:00:46.560Z"),
        (datetime(2026, 11, 25, 7, 0, 46, 999999, tzinfo=UTC), "2026-11-25T07:00:46.999Z"),
        (datetime.fromisoformat("2026-11-25T16:00:00.000500+08:00"), "2026-11-25T08:00:00.000Z"),
    ],
)
def test_times_are_utc_with_milliseconds_truncated_never_rounded_up(moment: datetime, shown: str) -> None:
    assert rfc3339(moment) == shown


def test_a_naive_time_cannot_be_shown() -> None:
    with pytest.raises(ValueError, match="aware"):
        rfc3339(datetime(2026, 11, 25))  # noqa: DTZ001


async def test_order_and_refund_entries_of_the_ledger_name_the_agents_order(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 3)
    await given_price(rt, sku.code, 1_000)
    agent = await given_agent(rt, deposit_minor=5_000)
    async with agent_client(rt, agent) as kq:
        order = await kq.place_order("A-1", sku.code, 2)
        async with rt.db.transaction() as session:
            await refunds.refund_delivered(
                rt.db, session, agent_id=agent.id, out_order_no="A-1", reason="supplier void", actor="test"
            )
        entries = [entry async for entry in kq.ledger()]

    assert [(e.kind, e.amount_minor, e.reference, e.out_order_no) for e in entries] == [
        ("topup", 5_000, "acme-opening", None),
        ("order", -2_000, order.order_no, "A-1"),
        ("refund", 2_000, order.order_no, "A-1"),
    ]
    assert all(e.at.tzinfo is not None for e in entries)


async def test_a_ledger_bound_without_a_zone_is_refused(rt: Runtime) -> None:
    agent = await given_agent(rt)
    async with agent_client(rt, agent) as kq:
        answer = await kq._http.send(kq._request("GET", "/ledger", [("since", "2026-11-25T00:00:00")]))

    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "bad_input")
    assert answer.json()["error"]["details"] == {"field": "since"}
