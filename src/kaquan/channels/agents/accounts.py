"""Agents (代理商): who they are, their prepaid deposit (预存款) on the ledger, and their API keys.

An agent's deposit is a credit-normal ledger account (`agent:<code>`): a top-up
credits it, an order debits it. Its floor is minus the agent's credit limit, so
the ledger itself refuses any debit that would take the balance lower. Top-ups
and adjustments are ledger transfers against the merchant's
`deposits:<currency>` account and are audited.

Keys: a public key id and a secret, sealed at rest under a named key (the server
must read the secret to check signatures). Rotation keeps the previous secret
valid for a grace period so agents can roll over without downtime.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_address, ip_network
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import ledger
from kaquan.audit import service as audit
from kaquan.channels import pricing as channels
from kaquan.channels.agents import request_signing
from kaquan.channels.errors import AgentNotFound
from kaquan.channels.models import Agent as Agent
from kaquan.channels.models import AgentKey as AgentKey
from kaquan.channels.schemas import BalanceOut
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing, SecretBox
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Conflict, NotFound
from kaquan.kit.keys import named_key
from kaquan.kit.money import Money

KEY_SEALING = "channels.agent_keys"
MAX_CODE = 48
MAX_REFERENCE = 64  # "<agent code>:<reference>" must fit the ledger's 128-character reference
MAX_AMOUNT_MINOR = 10**15  # far above any real deposit or credit, far below the 64-bit columns
STATUSES = ("active", "suspended")


class KeyNotFound(NotFound):
    code = "key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__("this agent has no such key", key_id=key_id)


class RevokedKeyNotRotatable(Conflict):
    code = "key_revoked"

    def __init__(self, key_id: str) -> None:
        super().__init__("a revoked key cannot be rotated; issue a new key", key_id=key_id)


class AgentExists(Conflict):
    code = "agent_exists"

    def __init__(self, code: str) -> None:
        super().__init__(f"an agent {code!r} exists already", agent=code)


def account_code(agent_code: str) -> str:
    return f"agent:{agent_code}"


def deposits_account_code(currency: str) -> str:
    return f"deposits:{currency}"


async def create_agent(
    db: Database,
    session: AsyncSession,
    *,
    code: str,
    name: str,
    currency: str,
    credit_limit_minor: int = 0,
    tier: str = "",
    actor: str,
) -> Agent:
    """A new agent on the open API channel, with an empty deposit account."""
    if not 1 <= len(code) <= MAX_CODE or not code.isascii() or not code.replace("_", "").replace("-", "").isalnum():
        raise BadInput(f"an agent code is 1-{MAX_CODE} ASCII letters, digits, '-' or '_'", field="code")
    _check_profile(name=name, tier=tier, credit_limit_minor=credit_limit_minor)
    Money(0, currency)  # an unsupported currency is bad input
    if (await session.execute(select(Agent.id).where(Agent.code == code))).first() is not None:
        raise AgentExists(code)
    channel = await channels.ensure_channel(db, session, "api", "api")
    account = await ledger.open_account(
        db, session, account_code(code), currency=currency, normal="credit", floor_minor=-credit_limit_minor
    )
    agent = Agent(
        code=code,
        name=name,
        channel_id=channel.id,
        tier=tier,
        currency=currency,
        account_id=account.id,
        credit_limit_minor=credit_limit_minor,
        status="active",
        created_at=clock.now(),
    )
    try:
        async with session.begin_nested():  # a concurrent create of the same code committed after our look
            session.add(agent)
            await session.flush()
    except IntegrityError:
        raise AgentExists(code) from None
    await audit.record(session, actor, "agent.created", target=code, after=describe(agent))
    return agent


def _check_profile(*, name: str | None = None, tier: str | None = None, credit_limit_minor: int | None = None) -> None:
    if name is not None and not 1 <= len(name) <= channels.MAX_NAME:
        raise BadInput(f"an agent name has 1-{channels.MAX_NAME} characters", field="name")
    if tier is not None and len(tier) > channels.MAX_TIER:
        raise BadInput(f"a tier name has at most {channels.MAX_TIER} characters", field="tier")
    if credit_limit_minor is not None and not 0 <= credit_limit_minor <= MAX_AMOUNT_MINOR:
        raise BadInput(f"a credit limit is 0-{MAX_AMOUNT_MINOR} minor units", field="credit_limit_minor")


def describe(agent: Agent) -> dict[str, object]:
    return {
        "code": agent.code,
        "name": agent.name,
        "tier": agent.tier,
        "currency": agent.currency,
        "credit_limit_minor": agent.credit_limit_minor,
        "status": agent.status,
    }


async def funds(session: AsyncSession, agent: Agent) -> BalanceOut:
    """The agent's deposit, its credit limit (minus its ledger floor) and what it may spend: the two added."""
    held = await ledger.balance(session, agent.account_id)
    limit = -(held.floor_minor or 0)
    return BalanceOut(
        currency=held.currency,
        balance_minor=held.balance_minor,
        credit_limit_minor=limit,
        available_minor=held.balance_minor + limit,
    )


async def get_agent(session: AsyncSession, agent_id: int) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise AgentNotFound(agent_id)
    return agent


async def list_agents(session: AsyncSession) -> list[Agent]:
    return list((await session.execute(select(Agent).order_by(Agent.code))).scalars())


async def update_agent(
    db: Database,
    session: AsyncSession,
    agent_id: int,
    *,
    actor: str,
    credit_limit_minor: int | None = None,
    tier: str | None = None,
    status: Literal["active", "suspended"] | None = None,
    name: str | None = None,
) -> Agent:
    """Change an agent's credit limit (the ledger floor follows), price tier, name or status (audited)."""
    _check_profile(name=name, tier=tier, credit_limit_minor=credit_limit_minor)
    if status is not None and status not in STATUSES:
        raise BadInput(f"an agent's status is one of {', '.join(STATUSES)}", field="status")
    agent = await get_agent(session, agent_id)
    before = describe(agent)
    if credit_limit_minor is not None:
        await ledger.set_floor(db, session, agent.account_id, -credit_limit_minor)
        agent.credit_limit_minor = credit_limit_minor
    if tier is not None:
        agent.tier = tier
    if status is not None:
        agent.status = status
    if name is not None:
        agent.name = name
    await audit.record(session, actor, "agent.updated", target=agent.code, before=before, after=describe(agent))
    return agent


async def top_up(
    db: Database,
    session: AsyncSession,
    agent_id: int,
    amount_minor: int,
    *,
    reference: str,
    memo: str = "",
    actor: str,
) -> ledger.Balance:
    """Credit money the agent paid in (or, negative, an adjustment the other way); idempotent by reference.

    A repeat under the same reference moves nothing and is not audited again.
    """
    if amount_minor == 0 or abs(amount_minor) > MAX_AMOUNT_MINOR:
        raise BadInput(f"a top-up moves a non-zero amount of at most {MAX_AMOUNT_MINOR}", field="amount_minor")
    if not 1 <= len(reference) <= MAX_REFERENCE:
        raise BadInput(
            f"a top-up needs a reference of 1-{MAX_REFERENCE} characters (the bank slip, say)", field="reference"
        )
    agent = await get_agent(session, agent_id)
    deposits = await ledger.open_account(
        db, session, deposits_account_code(agent.currency), currency=agent.currency, normal="debit"
    )
    # Locked until commit, so the balance moves by exactly this top-up or, for a repeat, not at all.
    before = await ledger.locked_balance(db, session, agent.account_id)
    kind = "topup" if amount_minor > 0 else "adjustment"
    await ledger.post(
        db,
        session,
        ledger.TransferSpec(
            kind=kind,
            legs=(ledger.Leg(deposits.id, amount_minor), ledger.Leg(agent.account_id, -amount_minor)),
            reference=f"{agent.code}:{reference}",
            memo=memo,
        ),
        actor=actor,
    )
    after = await ledger.balance(session, agent.account_id)
    if after.balance_minor != before.balance_minor:
        await audit.record(
            session,
            actor,
            f"agent.{kind}",
            target=agent.code,
            after={"amount_minor": amount_minor, "currency": agent.currency, "reference": reference},
        )
    return after


async def _sealer(db: Database, session: AsyncSession, keyring: KeyRing) -> SecretBox:
    return SecretBox(await named_key(db, session, keyring, KEY_SEALING))


def _check_allowlist(entries: list[str]) -> list[str]:
    cleaned = []
    for number, entry in enumerate(entries, start=1):
        try:
            cleaned.append(str(ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise BadInput(f"ip_allowlist entry {number} is not an IP address or CIDR", field="ip_allowlist") from None
    return cleaned


@dataclass(frozen=True)
class IssuedKey:
    """A key with its secret in plain text: shown once, never stored or logged like this."""

    key_id: str
    secret: str
    agent_id: int


async def issue_key(
    db: Database, session: AsyncSession, keyring: KeyRing, agent_id: int, *, ip_allowlist: list[str], actor: str
) -> IssuedKey:
    agent = await get_agent(session, agent_id)
    key_id, secret = request_signing.new_key_id(), request_signing.new_secret()
    box = await _sealer(db, session, keyring)
    session.add(
        AgentKey(
            agent_id=agent.id,
            key_id=key_id,
            secret_sealed=box.seal(secret, key_id.encode()),
            ip_allowlist=_check_allowlist(ip_allowlist),
            created_at=clock.now(),
        )
    )
    await session.flush()
    await audit.record(session, actor, "agent.key_issued", target=agent.code, after={"key_id": key_id})
    return IssuedKey(key_id, secret, agent.id)


async def _key(session: AsyncSession, agent_id: int, key_id: str) -> AgentKey:
    key = (
        await session.execute(select(AgentKey).where(AgentKey.key_id == key_id, AgentKey.agent_id == agent_id))
    ).scalar_one_or_none()
    if key is None:
        raise KeyNotFound(key_id)
    return key


async def rotate_key(
    db: Database,
    session: AsyncSession,
    keyring: KeyRing,
    agent_id: int,
    key_id: str,
    *,
    grace: timedelta,
    actor: str,
) -> IssuedKey:
    """A new secret for the key; the old one keeps signing until the grace period ends."""
    key = await _key(session, agent_id, key_id)
    if key.revoked_at is not None:
        raise RevokedKeyNotRotatable(key_id)
    secret = request_signing.new_secret()
    box = await _sealer(db, session, keyring)
    now = clock.now()
    key.previous_sealed, key.previous_valid_until = key.secret_sealed, now + grace
    key.secret_sealed, key.rotated_at = box.seal(secret, key_id.encode()), now
    await audit.record(
        session,
        actor,
        "agent.key_rotated",
        target=key_id,
        after={"previous_valid_until": key.previous_valid_until.isoformat()},
    )
    return IssuedKey(key_id, secret, agent_id)


async def revoke_key(db: Database, session: AsyncSession, agent_id: int, key_id: str, *, actor: str) -> AgentKey:
    key = await _key(session, agent_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        await audit.record(session, actor, "agent.key_revoked", target=key_id, after={})
    return key


async def set_allowlist(
    db: Database, session: AsyncSession, agent_id: int, key_id: str, entries: list[str], *, actor: str
) -> AgentKey:
    key = await _key(session, agent_id, key_id)
    before = {"ip_allowlist": list(key.ip_allowlist)}
    key.ip_allowlist = _check_allowlist(entries)
    await audit.record(
        session, actor, "agent.key_allowlist", target=key_id, before=before, after={"ip_allowlist": key.ip_allowlist}
    )
    return key


async def keys_of(session: AsyncSession, agent_id: int) -> list[AgentKey]:
    rows = await session.execute(select(AgentKey).where(AgentKey.agent_id == agent_id).order_by(AgentKey.id))
    return list(rows.scalars())


@dataclass(frozen=True)
class KeyMaterial:
    """What checking one request needs: the agent, the key's secrets in plain text, its allowlist."""

    agent: Agent
    key_id: str
    secret: str
    previous: tuple[str, datetime] | None  # the secret before the last rotation, and when its grace ends
    ip_allowlist: tuple[str, ...]
    revoked: bool

    def secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets that sign at `now`: the current one first, then the previous one while its grace lasts.

        Judged at each use, not when the material was read, so a cached copy never outlives the grace.
        """
        if self.previous is not None and self.previous[1] > now:
            return (self.secret, self.previous[0])
        return (self.secret,)


async def key_material(db: Database, session: AsyncSession, keyring: KeyRing, key_id: str) -> KeyMaterial | None:
    key = (await session.execute(select(AgentKey).where(AgentKey.key_id == key_id))).scalar_one_or_none()
    if key is None:
        return None
    agent = await get_agent(session, key.agent_id)
    box = await _sealer(db, session, keyring)
    previous = None
    if key.previous_sealed is not None and key.previous_valid_until is not None:
        previous = (box.open(key.previous_sealed, key_id.encode()), key.previous_valid_until)
    return KeyMaterial(
        agent,
        key_id,
        box.open(key.secret_sealed, key_id.encode()),
        previous,
        tuple(key.ip_allowlist),
        key.revoked_at is not None,
    )


def ip_allowed(allowlist: tuple[str, ...], ip: str) -> bool:
    if not allowlist:
        return True
    try:
        address = ip_address(ip)
    except ValueError:
        return False
    return any(address in ip_network(entry) for entry in allowlist)


async def by_code(session: AsyncSession, code: str) -> Agent:
    agent = (await session.execute(select(Agent).where(Agent.code == code))).scalar_one_or_none()
    if agent is None:
        raise AgentNotFound(code)
    return agent
