"""Statements where people get them: finance's admin API (bad input refused, nothing changed) and the open API."""

from typing import Any

import httpx
import pytest
from tests.support.agents import given_agent
from tests.support.http import the_error
from tests.support.identity import row_counts
from tests.support.settlement import TIERS, agent_buys, at_local, confirm, given_rule, given_selling_agent, run

from kaquan.client.wire import Credentials
from kaquan.kit import clock
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

RULES = "/admin/api/settlement/rules"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (f"{RULES}/agent:A001", {"fee_rate_bp": -1}, 400, "invalid_settlement_rule"),
        (f"{RULES}/agent:A001", {"fee_rate_bp": 10_001}, 400, "invalid_settlement_rule"),
        (
            f"{RULES}/agent:A001",
            {"tiers": [{"threshold_minor": 5_000_000, "rate_bp": 200}, {"threshold_minor": 1_000_000, "rate_bp": 100}]},
            400,
            "invalid_settlement_rule",
        ),
        (f"{RULES}/agent:A001", {"time_zone": "Mars/Olympus"}, 400, "invalid_settlement_rule"),
        (f"{RULES}/agent:A001", {"cycle": "yearly"}, 422, "validation_error"),
        (f"{RULES}/agent:NOBODY", {}, 404, "unknown_counterparty"),
        (f"{RULES}/warehouse:main", {}, 404, "unknown_counterparty"),
        (
            "/admin/api/settlement/runs",
            {"counterparty": "agent:NOBODY", "period": "2026-11-01..2026-11-30"},
            404,
            "unknown_counterparty",
        ),
        (
            "/admin/api/settlement/runs",
            {"counterparty": "agent:A001", "period": "2026-11-30..2026-11-01"},
            400,
            "invalid_period",
        ),
        ("/admin/api/settlement/runs", {"counterparty": "agent:A001", "period": "November"}, 400, "invalid_period"),
        (
            "/admin/api/settlement/runs",
            {"counterparty": "agent:A001", "period": "2099-01-01..2099-01-31"},
            400,
            "invalid_period",
        ),
    ],
)
async def test_bad_input_is_refused_with_its_code_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    path: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await given_selling_agent(rt)
    await given_rule(rt, "agent:A001", tiers=TIERS)
    before = await row_counts(rt)

    the_error(await client.post(path, json=body, headers=admin_headers), status, code)

    assert await row_counts(rt) == before


async def test_settlement_needs_the_finance_permissions(
    rt: Runtime, client: httpx.AsyncClient, headers_for: Any
) -> None:
    await given_selling_agent(rt)
    support = await headers_for("support")

    the_error(await client.post(f"{RULES}/agent:A001", json={}, headers=support), 403, "forbidden")
    finance = await headers_for("finance")
    answer = await client.post(f"{RULES}/agent:A001", json={"effective_from": "2026-01-01"}, headers=finance)
    assert answer.status_code == 201, answer.text


async def _sent(rt: Runtime, key_id: str, secret: str, path: str) -> httpx.Response:
    request = httpx.Request("GET", f"http://shop.test/open/v1{path}")
    Credentials(key_id, secret).sign(request)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt=rt))) as http:
        return await http.send(request)


async def test_an_agent_lists_and_downloads_its_own_statements_and_never_anothers(rt: Runtime) -> None:
    at_local(2026, 10, 20)
    agent, sku = await given_selling_agent(rt, price_minor=1_000_000)
    other = await given_agent(rt, code="B002")
    await given_rule(rt, "agent:A001", tiers=TIERS)
    at_local(2026, 11, 10)
    number = await agent_buys(rt, agent, sku, 1, "N-1")
    at_local(2026, 12, 2)
    draft = await run(rt, "agent:A001", "2026-11-01..2026-11-30")
    unconfirmed = await run(rt, "agent:A001", "2026-10-01..2026-10-31")
    await confirm(rt, draft.id)
    clock.reset()  # signatures are checked against the real time

    listed = await _sent(rt, agent.key_id, agent.secret, "/statements")
    one = await _sent(rt, agent.key_id, agent.secret, f"/statements/{draft.id}")
    csv = await _sent(rt, agent.key_id, agent.secret, f"/statements/{draft.id}/csv")

    assert listed.status_code == 200, listed.text
    assert [s["id"] for s in listed.json()["statements"]] == [draft.id]  # confirmed ones only
    assert one.json()["figures"]["commission_posted"] == 10_000
    assert [line["order_no"] for line in one.json()["lines"] if line["kind"] == "order"] == [number]
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.content.startswith("\ufeff".encode())
    assert "结算单" in csv.content.decode("utf-8-sig")
    the_error(await _sent(rt, other.key_id, other.secret, f"/statements/{draft.id}"), 404, "statement_not_found")
    the_error(await _sent(rt, other.key_id, other.secret, f"/statements/{draft.id}/csv"), 404, "statement_not_found")
    the_error(await _sent(rt, agent.key_id, agent.secret, f"/statements/{unconfirmed.id}"), 404, "statement_not_found")
    assert (await _sent(rt, other.key_id, other.secret, "/statements")).json() == {"statements": []}
    unsigned = await httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt=rt))).get(
        "http://shop.test/open/v1/statements"
    )
    assert unsigned.status_code == 401
