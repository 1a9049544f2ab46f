"""Every path that gives something away asks the decision point, and answers its refusals in its own form:
agent API orders (the open API's error JSON: docs/open-api.md), redemption (a failed redemption is counted for
the next decision), and buyer sign-in/sign-up by one-time code (the API's error JSON, the page's own words)."""

import json
import secrets
from typing import Any

import httpx
from sqlalchemy import func, select
from tests.support.agents import GivenAgent, given_agent, given_price
from tests.support.builders import given_sku_with_codes
from tests.support.console import HTML, console_sign_in
from tests.support.http import the_error
from tests.support.identity import HeadersFor, given_user
from tests.support.vouchers import given_voucher_sku, given_vouchers

from kaquan.client.wire import Credentials
from kaquan.orders.models import Order
from kaquan.risk import recent, rules, solve
from kaquan.runtime import Runtime


async def given_rule(rt: Runtime, expression: str, **effect: Any) -> None:
    async with rt.db.transaction() as session:
        await rules.add(session, name=expression[:80], expression=expression, enabled=True, actor="t", **effect)
    rt.risk.invalidate()


async def decisions(rt: Runtime, action: str) -> list[tuple[str, dict[str, Any]]]:
    await rt.risk.log.flush()
    async with rt.db.read() as session:
        found = await recent(session, limit=50)
    return [(d.outcome, d.features) for d in reversed(found) if d.features.get("request.action") == action]


async def signed_post(
    client: httpx.AsyncClient, agent: GivenAgent, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = client.build_request(
        "POST", path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    Credentials(agent.key_id, agent.secret).sign(request)
    return await client.send(request)


async def agent_orders(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return int(await session.scalar(select(func.count()).where(Order.channel == "api")) or 0)


async def test_an_agent_order_is_decided_per_agent_and_a_refusal_is_the_open_api_error_and_charges_nothing(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    await given_price(rt, sku.code, 500)
    agent = await given_agent(rt, code="acme")
    other = await given_agent(rt, code="other")
    await given_rule(rt, "agent.orders_1m > 1 and request.action == 'agent.order'", outcome="decline")
    order = {"out_order_no": "A-1", "sku": sku.code, "quantity": 1}

    first = await signed_post(client, agent, "/open/v1/orders", order)
    second = await signed_post(client, agent, "/open/v1/orders", order | {"out_order_no": "A-2"})
    batch = await signed_post(client, agent, "/open/v1/orders/batch", {"orders": [order | {"out_order_no": "A-3"}]})
    elsewhere = await signed_post(client, other, "/open/v1/orders", order)

    assert first.status_code == 201 and elsewhere.status_code == 201  # counted per agent
    assert the_error(second, 403, "risk_declined") == {}
    the_error(batch, 403, "risk_declined")
    assert await agent_orders(rt) == 2
    seen = await decisions(rt, "agent.order")
    assert [(outcome, f["agent.orders_1m"]) for outcome, f in seen] == [
        ("approve", 1),
        ("decline", 2),
        ("decline", 3),
        ("approve", 1),
    ]


async def test_a_challenged_agent_order_goes_through_once_with_its_solution(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    await given_price(rt, sku.code, 500)
    agent = await given_agent(rt)
    await given_rule(rt, "order.quantity >= 3 and request.action == 'agent.order'", outcome="challenge")
    order = {"out_order_no": "B-1", "sku": sku.code, "quantity": 3}

    challenged = await signed_post(client, agent, "/open/v1/orders", order)
    challenge = the_error(challenged, 403, "challenge_required")["challenge"]
    solution = {"X-Risk-Solution": solve(challenge["token"], challenge["bits"])}
    placed = await signed_post(client, agent, "/open/v1/orders", order, solution)
    replayed = await signed_post(client, agent, "/open/v1/orders", order | {"out_order_no": "B-2"}, solution)

    assert placed.status_code == 201, placed.text
    assert the_error(replayed, 403, "challenge_required")["previous_solution"] == "challenge_replayed"
    assert await agent_orders(rt) == 1


def redeem_body(code: str) -> dict[str, str]:
    return {"code": code, "nonce": secrets.token_hex(8), "device_id": "till-1", "location": "Store 12"}


async def test_failed_redemptions_are_a_feature_and_a_guesser_is_declined_before_its_guess_is_checked(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku, 1)
    await given_rule(rt, "account.redeem_failures_1h >= 2", outcome="decline")
    staff = await headers_for("operator")

    guesses = [
        await client.post("/admin/api/redemptions", json=redeem_body(f"GUESS{i:08d}"), headers=staff) for i in range(3)
    ]
    real = await client.post("/admin/api/redemptions", json=redeem_body(code), headers=staff)
    verify = await client.post("/admin/api/redemptions/verify", json={"code": code}, headers=staff)

    assert [g.status_code for g in guesses[:2]] == [404, 404]
    the_error(guesses[2], 403, "risk_declined")
    the_error(real, 403, "risk_declined")  # the account is declined now, whatever it sends
    the_error(verify, 403, "risk_declined")
    seen = await decisions(rt, "redeem")
    assert [(outcome, f["account.redeem_failures_1h"]) for outcome, f in seen][:3] == [
        ("approve", 0),
        ("approve", 1),
        ("decline", 2),
    ]
    assert seen[0][1]["account.redeems_1m"] == 1


async def test_a_bad_redemption_request_is_refused_before_it_counts(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    staff = await headers_for("operator")
    bad = await client.post("/admin/api/redemptions", json={"code": "x", "nonce": "short"}, headers=staff)
    assert bad.status_code == 422
    assert await decisions(rt, "redeem") == []


async def test_a_sign_in_is_decided_and_wrong_codes_count_for_the_next_one(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    rt.settings.dev_contact_codes = True
    await given_rule(rt, "contact.sign_in_failures_1h >= 2", outcome="decline")
    contact = {"contact": "guesser@example.com"}

    started = await client.post("/api/buyers/verify/start", json=contact)
    wrong = [await client.post("/api/buyers/verify/confirm", json=contact | {"code": "000000"}) for _ in range(2)]
    again = await client.post("/api/buyers/verify/start", json=contact)
    other = await client.post("/api/buyers/verify/start", json={"contact": "honest@example.com"})

    assert started.status_code == 202 and other.status_code == 202
    assert {w.status_code for w in wrong} <= {400, 401, 403, 409, 422, 429} and all(w.status_code >= 400 for w in wrong)
    assert the_error(again, 403, "risk_declined") == {}
    seen = await decisions(rt, "buyer.sign_in")
    assert [(o, f["contact.sign_in_failures_1h"]) for o, f in seen] == [("approve", 0), ("decline", 2), ("approve", 0)]


async def test_the_sign_in_page_answers_in_its_own_words_and_carries_a_challenge_for_its_script(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    rt.settings.dev_contact_codes = True
    await given_rule(rt, "ip.sign_ins_1h >= 2", outcome="challenge")
    await given_rule(rt, "ip.sign_ins_1h >= 4", outcome="decline")
    page = await client.get("/account/sign-in", params={"lang": "zh"}, headers=HTML)
    token = page.cookies.get("kq_form") or client.cookies.get("kq_form") or ""

    def form(n: int) -> dict[str, str]:  # one contact per try: the shop throttles codes per contact
        return {"contact": f"page{n}@example.com", "form_token": token}

    first = await client.post("/account/sign-in", data=form(1), headers=HTML)
    challenged = await client.post("/account/sign-in", data=form(2), headers=HTML)

    assert first.status_code == 200 and 'id="code-form"' in first.text
    assert challenged.status_code == 403 and "需要先完成一次安全验证" in challenged.text
    assert 'data-challenge-token="v1:buyer.sign_in:' in challenged.text and "/static/risk.js" in challenged.text
    token_bits = challenged.text.split('data-challenge-token="')[1].split('"')[0]
    bits = int(challenged.text.split('data-challenge-bits="')[1].split('"')[0])
    solution = {"risk_solution": solve(token_bits, bits)}
    solved = await client.post("/account/sign-in", data=form(2) | solution, headers=HTML)
    assert solved.status_code == 200 and 'id="code-form"' in solved.text
    declined = await client.post("/account/sign-in", data=form(4), headers=HTML)
    assert declined.status_code == 403 and "该请求未通过风控检查" in declined.text


async def test_the_console_counter_is_decided_too_and_shows_a_refusal_as_a_page(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku, 1)
    await given_user(rt, "alice", "operator")
    console = await console_sign_in(client)
    await given_rule(rt, "account.redeem_failures_1h >= 1", outcome="decline")

    missed = await console.post("/admin/redeem", {"code": "NOSUCHCODE01", "action": "verify"})
    refused = await console.post("/admin/redeem", {"code": code, "action": "redeem", "nonce": secrets.token_hex(8)})

    assert missed.status_code == 404
    assert refused.status_code == 403 and "text/html" in refused.headers["content-type"]
    assert [outcome for outcome, _ in await decisions(rt, "redeem")] == ["approve", "decline"]
