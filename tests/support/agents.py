"""An agent ready to buy through the open API: priced SKU, deposit, key, and a signed client."""

from dataclasses import dataclass

import httpx

from kaquan.channels import pricing as channels
from kaquan.channels.agents import accounts as agents
from kaquan.client import AsyncAgentClient
from kaquan.runtime import Runtime
from kaquan.web.app import create_app


@dataclass(frozen=True)
class GivenAgent:
    id: int
    code: str
    key_id: str
    secret: str


async def given_agent(
    rt: Runtime,
    *,
    code: str = "acme",
    deposit_minor: int = 100_000,
    credit_limit_minor: int = 0,
    tier: str = "",
) -> GivenAgent:
    async with rt.db.transaction() as session:
        agent = await agents.create_agent(
            rt.db,
            session,
            code=code,
            name=f"Agent {code}",
            currency="CNY",
            credit_limit_minor=credit_limit_minor,
            tier=tier,
            actor="test",
        )
        if deposit_minor:
            await agents.top_up(rt.db, session, agent.id, deposit_minor, reference=f"{code}-opening", actor="test")
        key = await agents.issue_key(rt.db, session, rt.keyring, agent.id, ip_allowlist=[], actor="test")
        return GivenAgent(agent.id, code, key.key_id, key.secret)


async def given_price(rt: Runtime, sku_code: str, price_minor: int, *, tier: str = "") -> None:
    async with rt.db.transaction() as session:
        await channels.set_price(rt.db, session, "api", sku_code, price_minor, tier=tier, actor="test")


def agent_client(rt: Runtime, agent: GivenAgent, transport: httpx.ASGITransport | None = None) -> AsyncAgentClient:
    """The agent's SDK client talking to the app in process (share one `transport` among many agents)."""
    transport = transport or httpx.ASGITransport(app=create_app(rt=rt))
    return AsyncAgentClient("http://shop.test", agent.key_id, agent.secret, transport=transport)
