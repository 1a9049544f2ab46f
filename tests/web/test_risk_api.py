"""The admin API of risk control: rules refused whole with the error's position, backtested, switched;
lists kept; decisions read back."""

import httpx
from tests.support.identity import HeadersFor
from tests.support.risk import windows_far_from_their_ends

from kaquan.risk import RiskContext
from kaquan.runtime import Runtime

RULE = {"name": "bot burst", "expression": "ip.orders_1m > 2 and sku.high_demand", "score": 50}


async def test_a_malformed_rule_is_a_400_with_its_position_and_nothing_is_saved(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    bad = await client.post(
        "/admin/api/risk/rules", json=RULE | {"expression": "ip.orders_1m > 2 and"}, headers=admin_headers
    )
    dunder = await client.post(
        "/admin/api/risk/rules", json=RULE | {"expression": "ip.__class__"}, headers=admin_headers
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_rule"
    assert bad.json()["error"]["details"] == {"position": 20, "column": 21}
    assert dunder.json()["error"]["details"]["position"] == 0
    assert (await client.get("/admin/api/risk/rules", headers=admin_headers)).json() == []


async def test_an_operator_backtests_then_switches_a_rule_on_and_it_decides(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    windows_far_from_their_ends()
    for _ in range(4):
        await rt.risk.decide(RiskContext("flash.purchase", ip="203.0.113.9", high_demand=True))
    tested = await client.post(
        "/admin/api/risk/rules/backtest", json={"expression": RULE["expression"], "last": 100}, headers=admin_headers
    )
    assert tested.json() | {"sample": []} == {
        "examined": 4,
        "hits": 2,
        "share": 0.5,
        "hits_by_outcome": {"approve": 2},
        "sample": [],
    }

    added = await client.post("/admin/api/risk/rules", json=RULE, headers=admin_headers)
    assert added.status_code == 201 and added.json()["enabled"] is False
    assert (await rt.risk.decide(RiskContext("flash.purchase", ip="203.0.113.9", high_demand=True))).score == 0
    enabled = await client.post("/admin/api/risk/rules/bot burst/enable", headers=admin_headers)
    assert enabled.json()["enabled"] is True
    decision = await rt.risk.decide(RiskContext("flash.purchase", ip="203.0.113.9", high_demand=True))
    assert (decision.outcome, decision.score, decision.reasons) == ("challenge", 50, ("rule:bot burst",))

    challenged = await client.get("/admin/api/risk/decisions?outcome=challenge", headers=admin_headers)
    [shown] = challenged.json()
    assert (shown["subject"], shown["reasons"], shown["features"]["ip.orders_1m"]) == (
        "ip:203.0.113.9",
        ["rule:bot burst"],
        6,
    )
    disabled = await client.post("/admin/api/risk/rules/bot burst/disable", headers=admin_headers)
    assert disabled.json()["enabled"] is False
    missing = await client.post("/admin/api/risk/rules/nope/enable", headers=admin_headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "risk_rule_not_found")


async def test_lists_are_added_shown_and_removed_and_a_duplicate_is_a_conflict(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    entry = {"kind": "prefix", "value": "198.51.100.23/24", "verdict": "block", "note": "scalper farm"}
    assert (await client.post("/admin/api/risk/lists", json=entry, headers=admin_headers)).status_code == 201
    again = await client.post("/admin/api/risk/lists", json=entry, headers=admin_headers)
    assert again.status_code == 409
    [shown] = (await client.get("/admin/api/risk/lists", headers=admin_headers)).json()
    assert (shown["value"], shown["verdict"]) == ("198.51.100.0/24", "block")
    assert (await rt.risk.decide(RiskContext("shop.order", ip="198.51.100.200"))).outcome == "decline"

    removed = await client.delete("/admin/api/risk/lists/prefix/198.51.100.0/24", headers=admin_headers)
    assert removed.status_code == 204
    assert (await rt.risk.decide(RiskContext("shop.order", ip="198.51.100.200"))).outcome == "approve"
    bad = await client.post("/admin/api/risk/lists", json=entry | {"value": "300.1.1.1/24"}, headers=admin_headers)
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_input")


async def test_support_reads_risk_but_changes_nothing(client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    support = await headers_for("support")
    assert (await client.get("/admin/api/risk/rules", headers=support)).status_code == 200
    refused = await client.post("/admin/api/risk/rules", json=RULE, headers=support)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")


async def test_a_declining_rule_that_would_decline_last_weeks_approved_buyers_needs_confirmation(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    windows_far_from_their_ends()
    for host in range(10):
        await rt.risk.decide(RiskContext("shop.order", ip=f"198.51.100.{host}", quantity=host))
    declining = {"name": "big", "expression": "order.quantity >= 5", "outcome": "decline"}

    refused = await client.post("/admin/api/risk/rules", json=declining | {"enabled": True}, headers=admin_headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "risk_rule_needs_confirmation"
    assert refused.json()["error"]["details"] == {"rule": "big", "hits": 5, "examined": 10, "limit_bp": 100}
    assert (await client.get("/admin/api/risk/rules", headers=admin_headers)).json() == []

    assert (await client.post("/admin/api/risk/rules", json=declining, headers=admin_headers)).status_code == 201
    again = await client.post("/admin/api/risk/rules/big/enable", headers=admin_headers)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "risk_rule_needs_confirmation")
    confirmed = await client.post("/admin/api/risk/rules/big/enable?confirm=true", headers=admin_headers)
    assert confirmed.status_code == 200 and confirmed.json()["enabled"] is True
