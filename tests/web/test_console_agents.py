"""The console's agents page: every agent with its prepaid balance, credit and live keys."""

import httpx
from tests.support.agents import given_agent
from tests.support.console import HTML, console_sign_in
from tests.support.identity import given_user

from kaquan.runtime import Runtime


async def test_the_agents_page_shows_each_agents_balance_credit_and_live_keys(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, "alice", "finance")
    await given_agent(rt, code="acme", deposit_minor=12_345, credit_limit_minor=5_000)
    await console_sign_in(client)

    page = await client.get("/admin/agents", headers=HTML)

    assert page.status_code == 200
    assert 'data-agent="acme"' in page.text
    assert "CNY 123.45" in page.text and "CNY 50.00" in page.text and "CNY 173.45" in page.text
    assert 'href="/admin/agents"' in page.text
