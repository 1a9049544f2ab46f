"""Who is settled: an agent (`agent:<code>`) or a marketplace store (`marketplace:<store>`), and their accounts.

The statement's balance is one ledger account seen in its normal sign:
- an agent: its prepaid deposit `agent:<code>` (what we hold for the agent); a sale shrinks it;
- a marketplace store: `receivable:marketplace:<store>:<cur>` (what the store owes us); a sale grows it.
"""

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels import agents, marketplace
from kaquan.kit.errors import NotFound
from kaquan.settlement.errors import UnknownCounterparty

Kind = Literal["agent", "marketplace"]


@dataclass(frozen=True)
class Party:
    code: str  # "agent:A001" or "marketplace:tmall"
    kind: Kind
    name: str
    currency: str | None  # an agent's own currency; a store's comes from its rule
    order_channel: str
    order_source: str
    agent_id: int | None

    def balance_account(self, currency: str) -> str:
        if self.kind == "agent":
            return self.code  # the deposit account is named like the counterparty (docs/channels.md)
        return f"receivable:{self.order_channel}:{currency}"

    def fees_account(self, currency: str) -> str:
        return f"fees:{self.order_channel}:{currency}"

    @property
    def sale_sign(self) -> int:
        """How a sale moves the balance: a deposit shrinks (-1), a receivable grows (+1)."""
        return -1 if self.kind == "agent" else 1


async def resolve(session: AsyncSession, counterparty: str) -> Party:
    """The agent or store a counterparty code names; `unknown_counterparty` (404) otherwise."""
    kind, colon, name = counterparty.partition(":")
    try:
        if colon and kind == "agent" and name:
            agent = await agents.by_code(session, name)
            return Party(counterparty, "agent", agent.name, agent.currency, "api", str(agent.id), agent.id)
        if colon and kind == "marketplace" and name:
            store = await marketplace.get_store(session, name)
            return Party(counterparty, "marketplace", store.name, None, store.code, name, None)
    except NotFound as exc:
        raise UnknownCounterparty(f"no counterparty {counterparty}", counterparty=counterparty) from exc
    raise UnknownCounterparty(
        f"a counterparty is agent:<code> or marketplace:<store>, not {counterparty!r}", counterparty=counterparty
    )
