"""The JSON APIs take JSON bodies only: another media type is refused with 415 and changes nothing."""

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.agents import given_agent
from tests.support.builders import given_sku_with_codes

from kaquan import ledger
from kaquan.channels.agents import accounts as agents
from kaquan.orders.models import Order
from kaquan.runtime import Runtime
from kaquan.web.content import is_json


async def balance_of(rt: Runtime, agent_id: int) -> int:
    async with rt.db.read() as session:
        return (await ledger.balance(session, (await agents.get_agent(session, agent_id)).account_id)).balance_minor


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"amount_minor": 500, "reference": "SLIP-1"}', "text/plain", 415, "unsupported_media_type"),
        (b"amount_minor=500&reference=SLIP-1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"amount_minor": 500, "reference": "SLIP-1"}', None, 415, "unsupported_media_type"),
        (b'{"amount_minor": "500", "reference": "SLIP-1"}', "application/json", 422, "validation_error"),
        (b'{"amount_minor": 500.0, "reference": "SLIP-1"}', "application/json", 422, "validation_error"),
    ],
    ids=["text", "form", "no-content-type", "amount-as-string", "amount-as-float"],
)
async def test_an_admin_top_up_not_sent_as_well_typed_json_is_refused_and_moves_no_money(
    rt: Runtime,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    content: bytes,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    agent = await given_agent(rt, deposit_minor=1_000)
    headers = {**admin_headers, **({"Content-Type": content_type} if content_type else {})}

    answer = await client.post(f"/admin/api/agents/{agent.id}/topups", content=content, headers=headers)

    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert await balance_of(rt, agent.id) == 1_000


async def test_a_shop_order_sent_as_a_form_is_refused_with_415_and_places_nothing(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 3)

    answer = await client.post(
        "/api/orders",
        content=f"sku={sku.code}&quantity=1".encode(),
        headers={"Idempotency-Key": "form-1", "Content-Type": "application/x-www-form-urlencoded"},
    )

    assert (answer.status_code, answer.json()["error"]["code"]) == (415, "unsupported_media_type"), answer.text
    async with rt.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(Order))).scalar_one() == 0


@pytest.mark.parametrize(
    ("content_type", "json"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/problem+json", True),
        ("text/json", False),
        ("text/plain", False),
        ("application/jsonp", False),
        ("", False),
        (None, False),
    ],
)
def test_what_counts_as_json(content_type: str | None, json: bool) -> None:
    assert is_json(content_type) is json
