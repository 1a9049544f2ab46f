"""The console's agent pages: every agent with its money, and one agent's funds, keys, callbacks and ledger.

Each action calls the service the admin API calls, so its rules hold here: a top-up in yuan lands on the
ledger once per reference, a callback URL must be public, a secret is shown once and never again. A role
that may not act sees no form and is refused anyway; bad input is a clear error page that changes nothing.
"""

import csv
import io
import re

import httpx
from openpyxl import load_workbook
from sqlalchemy import select
from tests.support.aftersale import given_agent_order
from tests.support.agents import given_agent
from tests.support.console import HTML, Console, console_sign_in
from tests.support.identity import given_user, row_counts

from kaquan.audit.models import AuditEntry
from kaquan.channels import agents, callbacks
from kaquan.runtime import Runtime

ACME = "/admin/agents/acme"


async def signed_in(rt: Runtime, client: httpx.AsyncClient, role: str, username: str = "alice") -> Console:
    await given_user(rt, username, role)
    return await console_sign_in(client, username)


async def funds_of(rt: Runtime, code: str = "acme") -> tuple[int, int]:
    async with rt.db.read() as session:
        held = await agents.funds(session, await agents.by_code(session, code))
    return held.balance_minor, held.credit_limit_minor


def shown_secret(page: httpx.Response) -> str:
    found = re.search(r'id="secret-value">([^<]+)<', page.text)
    assert found is not None, page.text
    return found.group(1)


async def audit_actions(rt: Runtime) -> list[str]:
    async with rt.db.read() as session:
        return list((await session.execute(select(AuditEntry.action).order_by(AuditEntry.id))).scalars())


async def test_the_agents_page_shows_each_agents_balance_credit_and_live_keys(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, "alice", "finance")
    await given_agent(rt, code="acme", deposit_minor=123_456, credit_limit_minor=5_000)
    await console_sign_in(client)

    page = await client.get("/admin/agents", headers=HTML)

    assert page.status_code == 200
    assert 'data-agent="acme"' in page.text and 'href="/admin/agents/acme"' in page.text
    assert "¥1,234.56" in page.text and "¥50.00" in page.text and "¥1,284.56" in page.text
    assert "正常" in page.text and ">active<" not in page.text  # the status as a word
    assert 'href="/admin/agents"' in page.text
    assert 'id="agent-create"' not in page.text  # finance reads channels but does not create agents


async def test_the_agents_list_downloads_as_csv_with_a_bom_and_as_xlsx(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_agent(rt, code="acme", deposit_minor=100_000, credit_limit_minor=5_000)
    console = await signed_in(rt, client, "support")

    as_csv = await console.get("/admin/agents.csv")
    as_xlsx = await console.get("/admin/agents.xlsx")

    assert as_csv.status_code == 200 and as_csv.content.startswith(b"\xef\xbb\xbf")
    [header, row] = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert header[:4] == ["代理商", "名称", "等级", "状态"]
    assert row[0] == "acme" and row[3] == "正常" and row[5:8] == ["1000.00", "50.00", "1050.00"]
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None and sheet["A2"].value == "acme"
    assert (await console.get("/admin/agents.pdf")).status_code == 422


async def test_an_operator_creates_an_agent_and_bad_input_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    console = await signed_in(rt, client, "operator")
    before = await row_counts(rt)

    for bad in (
        {"code": "a b", "name": "Acme"},
        {"code": "acme", "name": ""},
        {"code": "acme", "name": "A", "credit_limit": "1.234"},
    ):
        refused = await console.post("/admin/agents", bad)
        assert refused.status_code == 400 and 'id="error-message"' in refused.text, refused.text
    assert await row_counts(rt) == before

    created = await console.post("/admin/agents", {"code": "acme", "name": "Acme 代理", "credit_limit": "500"})
    assert created.status_code == 303 and created.headers["location"] == f"{ACME}?done=created"
    assert await funds_of(rt) == (0, 50_000)
    again = await console.post("/admin/agents", {"code": "acme", "name": "Acme"})
    assert again.status_code == 409


async def test_finance_tops_up_in_yuan_once_per_reference_and_sets_the_credit_limit(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_agent(rt, code="acme", deposit_minor=0)
    console = await signed_in(rt, client, "finance")
    page = await console.get(ACME)
    assert 'id="topup-form"' in page.text and 'id="key-form"' not in page.text  # finance moves money, not keys

    slip = {"amount": "1,000.50", "reference": "BANK-0001", "memo": "首笔预存"}
    assert (await console.post(f"{ACME}/topups", slip)).status_code == 303
    assert (await console.post(f"{ACME}/topups", slip)).status_code == 303  # the same slip again
    assert await funds_of(rt) == (100_050, 0)
    assert (await console.post(f"{ACME}/credit-limit", {"credit_limit": "300"})).status_code == 303
    assert await funds_of(rt) == (100_050, 30_000)

    before = await row_counts(rt)
    for bad in (
        {"amount": "-5", "reference": "B2"},
        {"amount": "0", "reference": "B2"},
        {"amount": "5", "reference": ""},
    ):
        assert (await console.post(f"{ACME}/topups", bad)).status_code == 400
    assert (await console.post(f"{ACME}/credit-limit", {"credit_limit": "abc"})).status_code == 400
    assert await row_counts(rt) == before

    page = await console.get(ACME)
    assert "¥1,000.50" in page.text and "¥300.00" in page.text and "¥1,300.50" in page.text
    ledger = page.text.split('id="ledger"', 1)[1]
    assert "充值" in ledger and "acme:BANK-0001" in ledger and "首笔预存" in ledger and "UTC+8" in ledger
    assert "agent.topup" in await audit_actions(rt)


async def test_the_ledger_pages_and_downloads_for_finance_only(rt: Runtime, client: httpx.AsyncClient) -> None:
    agent = await given_agent(rt, code="acme", deposit_minor=0)
    async with rt.db.transaction() as session:
        for n in range(55):
            await agents.top_up(rt.db, session, agent.id, 100 + n, reference=f"R{n:03d}", actor="test")
    finance = await signed_in(rt, client, "finance")

    first = await finance.get(ACME)
    assert first.text.count('data-posting="') == 50 and "acme:R049" in first.text and "acme:R050" not in first.text
    newer = re.search(r'href="(/admin/agents/acme\?ledger_after=\d+)#ledger-panel"', first.text)
    assert newer is not None
    rest = await finance.get(newer.group(1))
    assert rest.text.count('data-posting="') == 5 and "acme:R054" in rest.text

    sheet = load_workbook(io.BytesIO((await finance.get(f"{ACME}/ledger.xlsx")).content)).active
    assert sheet is not None and sheet.max_row == 56 and sheet["C2"].value == "充值" and sheet["E2"].value == "1.00"


async def test_an_operator_sees_no_ledger_and_may_not_move_money(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_agent(rt, code="acme", deposit_minor=500)
    operator = await signed_in(rt, client, "operator")

    page = await operator.get(ACME)
    assert page.status_code == 200 and 'id="ledger-panel"' not in page.text and 'id="topup-form"' not in page.text
    assert 'id="key-form"' in page.text and 'id="callback-form"' in page.text
    assert (await operator.get(f"{ACME}/ledger.csv")).status_code == 403
    refused = await operator.post(f"{ACME}/topups", {"amount": "5", "reference": "X"})
    assert refused.status_code == 403 and 'id="error-message"' in refused.text
    assert await funds_of(rt) == (500, 0)


async def test_a_new_key_secret_is_shown_once_and_rotation_and_revocation_need_a_ticked_box(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_agent(rt, code="acme")
    console = await signed_in(rt, client, "operator")

    issued = await console.post(f"{ACME}/keys", {"ip_allowlist": "203.0.113.7, 198.51.100.0/24"})
    assert issued.status_code == 200 and issued.headers["cache-control"] == "no-store"
    secret = shown_secret(issued)
    key_id = re.search(r'id="secret-key-id">([^<]+)<', issued.text).group(1)  # type: ignore[union-attr]
    page = await console.get(ACME)
    assert key_id in page.text and "198.51.100.0/24" in page.text and secret not in page.text

    before = await row_counts(rt)
    assert (await console.post(f"{ACME}/keys/{key_id}/rotate")).status_code == 400
    assert (await console.post(f"{ACME}/keys/{key_id}/revoke")).status_code == 400
    assert (await console.post(f"{ACME}/keys/{key_id}/allowlist", {"ip_allowlist": "not-an-ip"})).status_code == 400
    assert (await console.post(f"{ACME}/keys", {"ip_allowlist": "300.1.1.1"})).status_code == 400
    assert await row_counts(rt) == before

    rotated = await console.post(f"{ACME}/keys/{key_id}/rotate", {"confirm": "yes"})
    assert rotated.status_code == 200 and shown_secret(rotated) not in (secret, "")
    assert "轮换中" in (await console.get(ACME)).text
    assert (await console.post(f"{ACME}/keys/{key_id}/allowlist", {"ip_allowlist": ""})).status_code == 303
    assert (await console.post(f"{ACME}/keys/{key_id}/revoke", {"confirm": "yes"})).status_code == 303
    page = await console.get(ACME)
    assert "已吊销" in page.text and shown_secret(rotated) not in page.text
    assert (await console.post(f"{ACME}/keys/{key_id}/rotate", {"confirm": "yes"})).status_code == 409
    assert (await console.post(f"{ACME}/keys/nosuchkey/revoke", {"confirm": "yes"})).status_code == 404


async def test_support_sees_the_agent_but_no_forms_and_is_refused_on_the_server(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    agent = await given_agent(rt, code="acme")
    console = await signed_in(rt, client, "support")
    before = await row_counts(rt)

    page = await console.get(ACME)
    assert page.status_code == 200 and agent.key_id in page.text
    assert not re.search(r'<form method="post" action="/admin/agents', page.text)
    for path, form in (
        (f"{ACME}/keys", {}),
        (f"{ACME}/keys/{agent.key_id}/revoke", {"confirm": "yes"}),
        (f"{ACME}/callback", {"url": "https://93.184.216.34/kq"}),
        (f"{ACME}/credit-limit", {"credit_limit": "1"}),
        (f"{ACME}/refunds", {"out_order_no": "A-1", "reason": "x"}),
        ("/admin/agents", {"code": "beta", "name": "Beta"}),
    ):
        assert (await console.post(path, form)).status_code == 403, path
    assert await row_counts(rt) == before
    assert (await client.post(f"{ACME}/keys", data={"csrf_token": "forged"}, headers=HTML)).status_code == 403


async def test_a_callback_url_must_be_public_its_secret_is_shown_once_and_deliveries_replay(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    agent = await given_agent(rt, code="acme")
    other = await given_agent(rt, code="beta")
    console = await signed_in(rt, client, "operator")
    before = await row_counts(rt)
    refused = await console.post(f"{ACME}/callback", {"url": "http://127.0.0.1/hook"})
    assert refused.status_code == 422 and 'data-code="callback_url_refused"' in refused.text
    assert await row_counts(rt) == before

    set_ = await console.post(f"{ACME}/callback", {"url": "https://93.184.216.34/kq/hook?token=t0ps3cret"})
    assert set_.status_code == 200 and shown_secret(set_).startswith("whsec_")
    assert "t0ps3cret" not in set_.text
    async with rt.db.transaction() as session:
        await callbacks.set_endpoint(
            rt.db, session, rt.keyring, agent_id=other.id, url="https://93.184.216.34/b", allow_private=False, actor="t"
        )
        await callbacks.notify(session, agent_id=agent.id, event_type="order.delivered", data={"order": {"n": 1}})
        await callbacks.notify(session, agent_id=other.id, event_type="order.delivered", data={"order": {"n": 2}})
        [mine] = await callbacks.list_deliveries(session, agent_id=agent.id)
        [theirs] = await callbacks.list_deliveries(session, agent_id=other.id)

    page = await console.get(ACME)
    assert "https://93.184.216.34/kq/hook?…" in page.text and shown_secret(set_) not in page.text
    assert f'data-delivery="{mine.id}"' in page.text and "待发送" in page.text and "order.delivered" in page.text
    assert (await console.post(f"{ACME}/deliveries/{theirs.id}/replay")).status_code == 400
    assert (await console.post(f"{ACME}/deliveries/{mine.id}/replay")).status_code == 303
    assert "callback_delivery.replayed" in await audit_actions(rt)
    rows = list(csv.reader(io.StringIO((await console.get(f"{ACME}/deliveries.csv")).content.decode("utf-8-sig"))))
    assert len(rows) == 2 and rows[1][3] == "待发送"


async def test_finance_refunds_a_delivered_agent_order_to_the_deposit_once(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_agent_order(rt, quantity=2, deposit_minor=10_000)
    console = await signed_in(rt, client, "finance")
    assert await funds_of(rt) == (8_400, 0)

    before = await row_counts(rt)
    assert (await console.post(f"{ACME}/refunds", {"out_order_no": "A-1", "reason": ""})).status_code == 400
    assert (await console.post(f"{ACME}/refunds", {"out_order_no": "NOPE", "reason": "r"})).status_code == 404
    assert await row_counts(rt) == before

    done = await console.post(f"{ACME}/refunds", {"out_order_no": "A-1", "reason": "卡密无法兑换"})
    assert done.headers["location"] == f"{ACME}?done=refunded"
    again = await console.post(f"{ACME}/refunds", {"out_order_no": "A-1", "reason": "卡密无法兑换"})
    assert again.headers["location"] == f"{ACME}?done=refunded_before"
    assert await funds_of(rt) == (10_000, 0)
    page = await console.get(f"{ACME}?done=refunded")
    assert "订单已退款" in page.text and "退款" in page.text.split('id="ledger"', 1)[1]


async def test_an_operator_renames_retiers_and_suspends_an_agent(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_agent(rt, code="acme")
    console = await signed_in(rt, client, "operator")
    before = await row_counts(rt)
    assert (await console.post(f"{ACME}/profile", {"name": "Acme", "status": "frozen"})).status_code == 422
    assert (await console.post(f"{ACME}/profile", {"name": "", "status": "active"})).status_code == 400
    assert await row_counts(rt) == before

    saved = await console.post(f"{ACME}/profile", {"name": "Acme 华东", "tier": "gold", "status": "suspended"})
    assert saved.headers["location"] == f"{ACME}?done=profile"
    async with rt.db.read() as session:
        agent = await agents.by_code(session, "acme")
    assert (agent.name, agent.tier, agent.status) == ("Acme 华东", "gold", "suspended")
    assert "已停用" in (await console.get(ACME)).text
