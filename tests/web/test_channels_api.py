"""The admin API for channels and agents: each route's answer, its refusals, and who may call it.

Refusals carry the one error shape with a stable code and change nothing. Secrets (an
API key's, a callback's) are in the one answer that creates them and nowhere else: not
in any list, not in the audit trail.
"""

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.builders import given_sku, given_sku_with_codes
from tests.support.identity import HeadersFor

from kaquan.audit import service as audit
from kaquan.audit.models import AuditEntry
from kaquan.channels.agents import accounts as agents
from kaquan.channels.models import Agent, AgentKey, ChannelPrice, ChannelQuota
from kaquan.ledger.models import LedgerTransfer
from kaquan.runtime import Runtime

API = "/admin/api"


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details", "request_id"}, body
    code: str = body["error"]["code"]
    return code


async def rows(rt: Runtime) -> tuple[int, ...]:
    """Rows of agents, keys, prices, quotas, ledger transfers and audit entries: what a refusal leaves alone."""
    async with rt.db.read() as session:
        return tuple(
            [
                (await session.execute(select(func.count()).select_from(table))).scalar_one()
                for table in (Agent, AgentKey, ChannelPrice, ChannelQuota, LedgerTransfer, AuditEntry)
            ]
        )


async def audit_trail(rt: Runtime) -> list[AuditEntry]:
    async with rt.db.read() as session:
        return [entry async for entry in audit.entries(session)]


async def new_agent(client: httpx.AsyncClient, headers: dict[str, str], code: str = "acme", **more: Any) -> int:
    body = {"code": code, "name": f"Agent {code}", **more}
    created = await client.post(f"{API}/agents", json=body, headers=headers)
    assert created.status_code == 201, created.text
    agent_id: int = created.json()["id"]
    return agent_id


# --- channels, prices, quotas -------------------------------------------------------------------


async def test_a_channel_is_configured_listed_and_the_change_audited(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    changed = await client.put(
        f"{API}/channels/wholesale",
        json={"name": "B2B", "fee_rate_bp": 150, "warehouses": ["main"], "active": True},
        headers=admin_headers,
    )
    listed = await client.get(f"{API}/channels", headers=admin_headers)

    assert changed.status_code == 200, changed.text
    shown = {k: v for k, v in changed.json().items() if k != "id"}
    assert shown == {
        "code": "wholesale",
        "kind": "wholesale",
        "name": "B2B",
        "fee_rate_bp": 150,
        "warehouses": ["main"],
        "active": True,
    }
    assert listed.json() == [changed.json()]
    [entry] = [e for e in await audit_trail(rt) if e.action == "channel.configured"]
    assert entry.actor.startswith("owner ")
    assert (entry.target, entry.after) == ("wholesale", shown)


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("wholesale", {"fee_rate_bp": 10_001}, 400, "bad_input"),
        ("wholesale", {"fee_rate_bp": -1}, 400, "bad_input"),
        ("wholesale", {"warehouses": ["atlantis"]}, 400, "bad_input"),
        ("wholesale", {"fee": 100}, 422, "validation_error"),
        ("wholesale", {"fee_rate_bp": "lots"}, 422, "validation_error"),
        ("nowhere", {"fee_rate_bp": 100}, 404, "channel_not_found"),
    ],
    ids=["fee-over-100%", "fee-negative", "unknown-warehouse", "unknown-field", "fee-not-a-number", "no-such-channel"],
)
async def test_a_bad_channel_change_is_refused_with_its_code_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], path: str, body: Any, status: int, code: str
) -> None:
    before = await rows(rt)

    answer = await client.put(f"{API}/channels/{path}", json=body, headers=admin_headers)

    assert (answer.status_code, error_code(answer)) == (status, code)
    assert await rows(rt) == before
    assert (await client.get(f"{API}/channels", headers=admin_headers)).json() == []


async def test_prices_are_set_listed_per_tier_and_removed(
    client: httpx.AsyncClient, admin_headers: dict[str, str], rt: Runtime
) -> None:
    sku = await given_sku(rt, code="NETFLIX-1M")
    prices = f"{API}/channels/api/prices"

    default = await client.post(prices, json={"sku": sku.code, "price_minor": 3500}, headers=admin_headers)
    gold = await client.post(prices, json={"sku": sku.code, "price_minor": 3200, "tier": "gold"}, headers=admin_headers)

    assert (default.status_code, gold.status_code) == (201, 201)
    assert gold.json() == {"sku": sku.code, "tier": "gold", "price_minor": 3200, "currency": "CNY"}
    for tier, price in (("gold", 3200), ("silver", 3500), ("", 3500)):
        listed = await client.get(prices, params={"tier": tier}, headers=admin_headers)
        assert listed.json() == [{"sku": sku.code, "price_minor": price, "currency": "CNY"}], tier

    removed = await client.delete(f"{prices}/{sku.code}", params={"tier": "gold"}, headers=admin_headers)
    assert removed.status_code == 200, removed.text
    assert (await client.get(prices, params={"tier": "gold"}, headers=admin_headers)).json()[0]["price_minor"] == 3500
    assert (await client.delete(f"{prices}/{sku.code}", headers=admin_headers)).status_code == 200
    assert (await client.get(prices, headers=admin_headers)).json() == []
    again = await client.delete(f"{prices}/{sku.code}", headers=admin_headers)
    assert (again.status_code, error_code(again)) == (404, "price_not_found")


@pytest.mark.parametrize(
    ("channel", "body", "status", "code"),
    [
        ("api", {"sku": "NETFLIX-1M", "price_minor": -1}, 400, "bad_input"),
        ("api", {"sku": "NETFLIX-1M", "price_minor": 100, "tier": "t" * 33}, 400, "bad_input"),
        ("api", {"sku": "NO-SUCH", "price_minor": 100}, 404, "sku_not_found"),
        ("nowhere", {"sku": "NETFLIX-1M", "price_minor": 100}, 404, "channel_not_found"),
        ("api", {"sku": "NETFLIX-1M"}, 422, "validation_error"),
        ("api", {"sku": "NETFLIX-1M", "price_minor": 99.5}, 422, "validation_error"),
    ],
    ids=["negative", "tier-too-long", "unknown-sku", "unknown-channel", "no-price", "fractional-price"],
)
async def test_a_bad_price_is_refused_with_its_code_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    channel: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await given_sku(rt, code="NETFLIX-1M")
    before = await rows(rt)

    answer = await client.post(f"{API}/channels/{channel}/prices", json=body, headers=admin_headers)

    assert (answer.status_code, error_code(answer)) == (status, code)
    assert await rows(rt) == before


async def test_a_quota_is_set_lifted_and_a_bad_one_refused(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku_with_codes(rt, 4)
    quotas = f"{API}/channels/api/quotas"

    held = await client.put(quotas, json={"sku": sku.code, "max_share_bp": 5_000}, headers=admin_headers)
    assert (held.status_code, held.json()) == (200, {"sku": sku.code, "max_share_bp": 5_000})
    before = await rows(rt)
    for body, status, code in (
        ({"sku": sku.code, "max_share_bp": 10_001}, 400, "bad_input"),
        ({"sku": "NO-SUCH", "max_share_bp": 100}, 404, "sku_not_found"),
        ({"sku": sku.code}, 422, "validation_error"),
    ):
        answer = await client.put(quotas, json=body, headers=admin_headers)
        assert (answer.status_code, error_code(answer)) == (status, code), body
    assert await rows(rt) == before
    lifted = await client.put(quotas, json={"sku": sku.code, "max_share_bp": None}, headers=admin_headers)
    assert lifted.status_code == 200
    assert (await rows(rt))[3] == 0
    assert [e.after for e in await audit_trail(rt) if e.action == "channel.quota_set"] == [
        {"max_share_bp": 5_000},
        {"max_share_bp": None},
    ]


# --- agents -------------------------------------------------------------------------------------


async def test_an_agent_is_created_shown_listed_and_changed(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await client.post(
        f"{API}/agents",
        json={"code": "acme", "name": "Acme Games", "currency": "CNY", "credit_limit_minor": 1_000, "tier": "gold"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert {k: agent[k] for k in ("code", "name", "tier", "currency", "credit_limit_minor", "status")} == {
        "code": "acme",
        "name": "Acme Games",
        "tier": "gold",
        "currency": "CNY",
        "credit_limit_minor": 1_000,
        "status": "active",
    }
    assert (agent["balance_minor"], agent["available_minor"]) == (0, 1_000)

    shown = (await client.get(f"{API}/agents/{agent['id']}", headers=admin_headers)).json()
    assert (shown["keys"], shown["callback_url"]) == ([], None)
    assert (await client.get(f"{API}/agents", headers=admin_headers)).json() == [agent]

    changed = await client.patch(
        f"{API}/agents/{agent['id']}",
        json={"name": "Acme 游戏", "tier": "", "status": "suspended"},
        headers=admin_headers,
    )
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["tier"], changed.json()["status"]) == ("Acme 游戏", "", "suspended")
    assert [e.action for e in await audit_trail(rt) if e.target == "acme"] == ["agent.created", "agent.updated"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"code": "acme", "name": "Again"}, 409, "agent_exists"),
        ({"code": "zeta", "name": "Zeta", "credit_limit_minor": -1}, 400, "bad_input"),
        ({"code": "zeta", "name": "Zeta", "currency": "XXX"}, 400, "bad_input"),
        ({"code": "ze ta", "name": "Zeta"}, 400, "bad_input"),
        ({"code": "zeta"}, 422, "validation_error"),
        ({"code": "zeta", "name": "Zeta", "secret": "mine"}, 422, "validation_error"),
    ],
    ids=["duplicate-code", "negative-credit-limit", "unsupported-currency", "bad-code", "no-name", "unknown-field"],
)
async def test_a_bad_agent_is_refused_with_its_code_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, Any], status: int, code: str
) -> None:
    await new_agent(client, admin_headers, "acme")
    before = await rows(rt)

    answer = await client.post(f"{API}/agents", json=body, headers=admin_headers)

    assert (answer.status_code, error_code(answer)) == (status, code)
    assert await rows(rt) == before


async def test_an_unknown_agent_is_not_found_on_every_route(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for method, path, body in (
        ("GET", "/agents/404", None),
        ("PATCH", "/agents/404", {"tier": "gold"}),
        ("PUT", "/agents/404/credit-limit", {"credit_limit_minor": 1}),
        ("POST", "/agents/404/topups", {"amount_minor": 1, "reference": "R-1"}),
        ("GET", "/agents/404/ledger", None),
        ("GET", "/agents/404/keys", None),
        ("POST", "/agents/404/keys", {}),
        ("PUT", "/agents/404/callback", {"url": "https://93.184.216.34/kq"}),
    ):
        answer = await client.request(method, f"{API}{path}", json=body, headers=admin_headers)
        assert (answer.status_code, error_code(answer)) == (404, "agent_not_found"), (method, path)
    bad_status = await client.patch(f"{API}/agents/404", json={"status": "deleted"}, headers=admin_headers)
    assert (bad_status.status_code, error_code(bad_status)) == (422, "validation_error")


async def test_top_ups_credit_the_balance_once_per_reference_and_show_in_the_ledger(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agent_id = await new_agent(client, admin_headers)
    topups = f"{API}/agents/{agent_id}/topups"

    first = await client.post(
        topups, json={"amount_minor": 50_000, "reference": "BANK-1", "memo": "预存"}, headers=admin_headers
    )
    again = await client.post(topups, json={"amount_minor": 50_000, "reference": "BANK-1"}, headers=admin_headers)
    before = await rows(rt)
    conflict = await client.post(topups, json={"amount_minor": 40_000, "reference": "BANK-1"}, headers=admin_headers)
    zero = await client.post(topups, json={"amount_minor": 0, "reference": "BANK-2"}, headers=admin_headers)
    no_reference = await client.post(topups, json={"amount_minor": 10}, headers=admin_headers)

    assert (first.status_code, first.json()["balance_minor"]) == (201, 50_000)
    assert (again.status_code, again.json()["balance_minor"]) == (201, 50_000)
    assert (conflict.status_code, error_code(conflict)) == (409, "idempotency_conflict")
    assert (zero.status_code, error_code(zero)) == (400, "bad_input")
    assert (no_reference.status_code, error_code(no_reference)) == (422, "validation_error")
    assert await rows(rt) == before
    entries = (await client.get(f"{API}/agents/{agent_id}/ledger", headers=admin_headers)).json()
    assert [(e["kind"], e["amount_minor"], e["reference"], e["memo"]) for e in entries] == [
        ("topup", 50_000, "acme:BANK-1", "预存")
    ]
    assert (await client.get(f"{API}/ledger/check", headers=admin_headers)).json() == {"ok": True, "problems": []}
    assert [e.action for e in await audit_trail(rt)].count("agent.topup") == 1


async def test_a_credit_limit_moves_the_available_balance_and_cannot_go_below_the_credit_in_use(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agent_id = await new_agent(client, admin_headers, credit_limit_minor=5_000)
    limit = f"{API}/agents/{agent_id}/credit-limit"
    async with rt.db.transaction() as session:
        await agents.top_up(rt.db, session, agent_id, -3_000, reference="USED", actor="test")

    raised = await client.put(limit, json={"credit_limit_minor": 8_000}, headers=admin_headers)
    assert (raised.status_code, raised.json()["available_minor"]) == (200, 5_000)
    before = await rows(rt)
    below = await client.put(limit, json={"credit_limit_minor": 2_999}, headers=admin_headers)
    negative = await client.put(limit, json={"credit_limit_minor": -1}, headers=admin_headers)

    assert (below.status_code, error_code(below)) == (409, "floor_above_balance")
    assert (negative.status_code, error_code(negative)) == (400, "bad_input")
    assert await rows(rt) == before
    assert (await client.get(f"{API}/agents/{agent_id}", headers=admin_headers)).json()["credit_limit_minor"] == 8_000


# --- keys and callbacks: secrets shown once -----------------------------------------------------


async def test_a_key_secret_is_shown_once_and_never_listed_or_audited(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agent_id = await new_agent(client, admin_headers)
    keys = f"{API}/agents/{agent_id}/keys"

    issued = await client.post(keys, json={"ip_allowlist": ["203.0.113.0/24"]}, headers=admin_headers)
    assert issued.status_code == 201, issued.text
    key_id, secret = issued.json()["key_id"], issued.json()["secret"]
    rotated = await client.post(f"{keys}/{key_id}/rotate", headers=admin_headers)
    assert rotated.status_code == 200
    assert rotated.json()["previous_secret_valid_hours"] == 24
    new_secret = rotated.json()["secret"]
    allowlist = await client.put(
        f"{keys}/{key_id}/allowlist", json={"ip_allowlist": ["10.0.0.1"]}, headers=admin_headers
    )
    assert allowlist.json()["ip_allowlist"] == ["10.0.0.1/32"]

    listed = await client.get(keys, headers=admin_headers)
    shown = await client.get(f"{API}/agents/{agent_id}", headers=admin_headers)
    agents_list = await client.get(f"{API}/agents", headers=admin_headers)
    [key] = listed.json()
    assert key["key_id"] == key_id
    assert key["rotated_at"] is not None and key["previous_valid_until"] is not None and key["revoked_at"] is None
    assert shown.json()["keys"] == listed.json()
    trail = json.dumps([[e.before, e.after, e.target] for e in await audit_trail(rt)])
    for text in (listed.text, shown.text, agents_list.text, trail):
        assert secret not in text and new_secret not in text
    assert key_id in trail

    revoked = await client.delete(f"{keys}/{key_id}", headers=admin_headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    rotate_revoked = await client.post(f"{keys}/{key_id}/rotate", headers=admin_headers)
    assert (rotate_revoked.status_code, error_code(rotate_revoked)) == (409, "key_revoked")


async def test_bad_key_requests_are_refused_with_their_codes_and_change_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agent_id = await new_agent(client, admin_headers)
    keys = f"{API}/agents/{agent_id}/keys"
    before = await rows(rt)

    for method, path, body, status, code in (
        ("POST", keys, {"ip_allowlist": ["10.0.0.1", "not-an-ip"]}, 400, "bad_input"),
        ("POST", keys, {"ip_allowlist": ["10.0.0.1"] * 65}, 422, "validation_error"),
        ("POST", f"{keys}/kq_ak_0000000000000000/rotate", None, 404, "key_not_found"),
        ("PUT", f"{keys}/kq_ak_0000000000000000/allowlist", {"ip_allowlist": []}, 404, "key_not_found"),
        ("DELETE", f"{keys}/kq_ak_0000000000000000", None, 404, "key_not_found"),
    ):
        answer = await client.request(method, path, json=body, headers=admin_headers)
        assert (answer.status_code, error_code(answer)) == (status, code), (method, path)
    assert await rows(rt) == before


async def test_a_callback_secret_is_shown_once_and_the_url_query_never_stored_in_the_open(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agent_id = await new_agent(client, admin_headers)
    callback = f"{API}/agents/{agent_id}/callback"

    set_ = await client.put(
        callback, json={"url": "https://93.184.216.34/kq/hook?token=t0ps3cret"}, headers=admin_headers
    )
    private = await client.put(callback, json={"url": "http://127.0.0.1/hook"}, headers=admin_headers)

    assert set_.status_code == 200, set_.text
    secret = set_.json()["secret"]
    assert secret.startswith("whsec_")
    assert set_.json()["url"] == "https://93.184.216.34/kq/hook?…"
    assert (private.status_code, error_code(private)) == (422, "callback_url_refused")
    shown = await client.get(f"{API}/agents/{agent_id}", headers=admin_headers)
    assert shown.json()["callback_url"] == "https://93.184.216.34/kq/hook?…"
    trail = json.dumps([[e.before, e.after] for e in await audit_trail(rt)], ensure_ascii=False)
    for text in (shown.text, trail):
        assert secret not in text and "t0ps3cret" not in text


# --- who may do what ----------------------------------------------------------------------------


async def test_support_and_auditors_read_channels_and_agents_but_change_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], headers_for: HeadersFor
) -> None:
    agent_id = await new_agent(client, admin_headers)
    await given_sku(rt, code="NETFLIX-1M")
    reads = ["/channels", "/agents", f"/agents/{agent_id}", f"/agents/{agent_id}/keys"]
    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("PUT", "/channels/api", {"fee_rate_bp": 1}),
        ("POST", "/channels/api/prices", {"sku": "NETFLIX-1M", "price_minor": 1}),
        ("DELETE", "/channels/api/prices/NETFLIX-1M", {}),
        ("PUT", "/channels/api/quotas", {"sku": "NETFLIX-1M", "max_share_bp": 1}),
        ("POST", "/agents", {"code": "zeta", "name": "Zeta"}),
        ("PATCH", f"/agents/{agent_id}", {"status": "suspended"}),
        ("POST", f"/agents/{agent_id}/keys", {}),
        ("PUT", f"/agents/{agent_id}/callback", {"url": "https://93.184.216.34/x"}),
        ("POST", f"/agents/{agent_id}/topups", {"amount_minor": 1, "reference": "R"}),
        ("PUT", f"/agents/{agent_id}/credit-limit", {"credit_limit_minor": 1}),
    ]
    roles = {role: await headers_for(role) for role in ("support", "auditor")}
    before = await rows(rt)

    for role, headers in roles.items():
        for path in reads:
            assert (await client.get(f"{API}{path}", headers=headers)).status_code == 200, (role, path)
        for method, path, body in writes:
            answer = await client.request(method, f"{API}{path}", json=body or None, headers=headers)
            assert (answer.status_code, error_code(answer)) == (403, "forbidden"), (role, method, path)

    assert await rows(rt) == before
    ledger_of_agent = f"{API}/agents/{agent_id}/ledger"
    assert (await client.get(ledger_of_agent, headers=roles["auditor"])).status_code == 200
    assert (await client.get(ledger_of_agent, headers=roles["support"])).status_code == 403


async def test_top_ups_and_credit_limits_need_finance_write_and_agents_need_channels_write(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], headers_for: HeadersFor
) -> None:
    agent_id = await new_agent(client, admin_headers)
    operator, finance = await headers_for("operator"), await headers_for("finance")
    topup = {"amount_minor": 1_000, "reference": "BANK-1"}

    assert (await client.post(f"{API}/agents/{agent_id}/topups", json=topup, headers=operator)).status_code == 403
    limit = {"credit_limit_minor": 500}
    assert (await client.put(f"{API}/agents/{agent_id}/credit-limit", json=limit, headers=operator)).status_code == 403
    assert (await client.post(f"{API}/agents/{agent_id}/topups", json=topup, headers=finance)).status_code == 201
    assert (await client.put(f"{API}/agents/{agent_id}/credit-limit", json=limit, headers=finance)).status_code == 200
    create = {"code": "zeta", "name": "Zeta"}
    assert (await client.post(f"{API}/agents", json=create, headers=finance)).status_code == 403
    assert (await client.post(f"{API}/agents", json=create, headers=operator)).status_code == 201
    shown = (await client.get(f"{API}/agents/{agent_id}", headers=finance)).json()
    assert (shown["balance_minor"], shown["credit_limit_minor"], shown["available_minor"]) == (1_000, 500, 1_500)
    actors = {e.action: e.actor for e in await audit_trail(rt)}
    assert actors["agent.topup"].startswith("finance-")
