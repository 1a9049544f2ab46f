"""Agents (代理商): who they are, their prepaid deposit on the ledger, and their API keys.

A deposit is a ledger account whose floor is minus the agent's credit limit; top-ups are
idempotent by the payment's reference. A key's secret is shown once, sealed at rest,
rotated with a grace period, revoked at once, and never written to the audit trail.
"""

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.support.agents import given_agent

from kaquan import ledger
from kaquan.audit import service as audit
from kaquan.audit.models import AuditEntry
from kaquan.channels.agents import accounts as agents
from kaquan.channels.agents import request_signing
from kaquan.channels.models import Agent, AgentKey
from kaquan.channels.schemas import BalanceOut
from kaquan.kit import clock
from kaquan.kit.errors import DomainError
from kaquan.ledger.models import LedgerAccount, LedgerTransfer
from kaquan.runtime import Runtime


async def create(rt: Runtime, code: str = "acme", **options: Any) -> Agent:
    async with rt.db.transaction() as session:
        return await agents.create_agent(
            rt.db,
            session,
            code=code,
            name=options.pop("name", "Acme Games"),
            currency=options.pop("currency", "CNY"),
            actor=options.pop("actor", "ops"),
            **options,
        )


async def refused_code(rt: Runtime, change: Any) -> str:
    """Run `change(session)` in a transaction that must be refused; returns the error code."""
    with pytest.raises(DomainError) as refused:
        async with rt.db.transaction() as session:
            await change(session)
    return refused.value.code


async def counts(rt: Runtime) -> tuple[int, ...]:
    """Rows of agents, keys, ledger accounts, transfers and audit entries: what a refusal must not change."""
    async with rt.db.read() as session:
        return tuple(
            [
                (await session.execute(select(func.count()).select_from(table))).scalar_one()
                for table in (Agent, AgentKey, LedgerAccount, LedgerTransfer, AuditEntry)
            ]
        )


async def held(rt: Runtime, agent_id: int) -> ledger.Balance:
    async with rt.db.read() as session:
        return await ledger.balance(session, (await agents.get_agent(session, agent_id)).account_id)


async def top_up(rt: Runtime, agent_id: int, amount: int, reference: str) -> ledger.Balance:
    async with rt.db.transaction() as session:
        return await agents.top_up(rt.db, session, agent_id, amount, reference=reference, memo="wire", actor="finance")


async def audit_of(rt: Runtime, action: str) -> list[AuditEntry]:
    async with rt.db.read() as session:
        return list(reversed(await audit.search(session, audit.AuditFilter(action=action))))


async def every_audit_entry_as_text(rt: Runtime) -> str:
    async with rt.db.read() as session:
        found = [entry async for entry in audit.entries(session)]
    return json.dumps([[e.actor, e.action, e.target, e.before, e.after] for e in found], ensure_ascii=False)


# --- creating agents ----------------------------------------------------------------------------


async def test_a_new_agent_has_an_empty_deposit_whose_floor_is_minus_its_credit_limit(rt: Runtime) -> None:
    agent = await create(rt, "acme", credit_limit_minor=50_000, tier="gold")

    balance = await held(rt, agent.id)
    assert (balance.currency, balance.balance_minor, balance.floor_minor) == ("CNY", 0, -50_000)
    async with rt.db.read() as session:
        account = await ledger.account_by_code(session, "agent:acme")
        assert account is not None and account.id == agent.account_id
        assert [a.code for a in await agents.list_agents(session)] == ["acme"]
        assert (await agents.by_code(session, "acme")).id == agent.id
    [created] = await audit_of(rt, "agent.created")
    assert (created.actor, created.target) == ("ops", "acme")
    assert created.after == {
        "code": "acme",
        "name": "Acme Games",
        "tier": "gold",
        "currency": "CNY",
        "credit_limit_minor": 50_000,
        "status": "active",
    }


async def test_a_duplicate_agent_code_is_a_conflict_and_changes_nothing(rt: Runtime) -> None:
    await create(rt, "acme")
    before = await counts(rt)

    refused = await refused_code(
        rt, lambda s: agents.create_agent(rt.db, s, code="acme", name="Other", currency="USD", actor="ops")
    )

    assert refused == "agent_exists"
    assert await counts(rt) == before


async def test_the_same_agent_created_at_once_by_two_operators_exists_once(rt: Runtime) -> None:
    async def attempt() -> str:
        try:
            await create(rt, "acme")
        except DomainError as refused:
            return refused.code
        return "created"

    outcomes = await asyncio.gather(*(attempt() for _ in range(4)))

    assert sorted(outcomes) == ["agent_exists"] * 3 + ["created"]
    assert (await counts(rt))[:3] == (1, 0, 1)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"code": ""}, "code"),
        ({"code": "has space"}, "code"),
        ({"code": "a" * 49}, "code"),
        ({"code": "代理商"}, "code"),
        ({"code": "acme/../x"}, "code"),
        ({"credit_limit_minor": -1}, "credit_limit_minor"),
        ({"credit_limit_minor": 10**19}, "credit_limit_minor"),
        ({"currency": "XXX"}, None),
        ({"currency": "cny"}, None),
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"tier": "t" * 33}, "tier"),
    ],
    ids=[
        "empty-code",
        "code-with-space",
        "code-too-long",
        "non-ascii-code",
        "code-with-slash",
        "negative-credit-limit",
        "credit-limit-beyond-64-bit",
        "unsupported-currency",
        "lower-case-currency",
        "empty-name",
        "name-too-long",
        "tier-too-long",
    ],
)
async def test_a_bad_agent_is_refused_as_bad_input_and_changes_nothing(
    rt: Runtime, options: dict[str, Any], field: str | None
) -> None:
    await create(rt, "existing")
    before = await counts(rt)
    given = {"code": "acme", "name": "Acme", "currency": "CNY", **options}

    with pytest.raises(DomainError) as refused:
        async with rt.db.transaction() as session:
            await agents.create_agent(rt.db, session, actor="ops", **given)

    assert (refused.value.status, refused.value.code) == (400, "bad_input")
    if field is not None:
        assert refused.value.details["field"] == field
    assert await counts(rt) == before


# --- deposits -----------------------------------------------------------------------------------


async def test_a_top_up_credits_the_deposit_against_the_merchants_deposits_account(rt: Runtime) -> None:
    agent = await create(rt, "acme")

    balance = await top_up(rt, agent.id, 500_000, "BANK-1")

    assert (balance.balance_minor, balance.currency) == (500_000, "CNY")
    async with rt.db.read() as session:
        [entry] = await ledger.entries(session, agent.account_id)
        deposits = await ledger.account_by_code(session, "deposits:CNY")
        assert deposits is not None
        assert (await ledger.balance(session, deposits.id)).balance_minor == 500_000
        assert (await ledger.check(session)).ok
    assert (entry.kind, entry.amount_minor, entry.reference, entry.memo) == ("topup", 500_000, "acme:BANK-1", "wire")
    [audited] = await audit_of(rt, "agent.topup")
    assert (audited.actor, audited.target) == ("finance", "acme")
    assert audited.after == {"amount_minor": 500_000, "currency": "CNY", "reference": "BANK-1"}


async def test_a_top_up_repeated_under_its_reference_is_booked_and_audited_once(rt: Runtime) -> None:
    agent = await create(rt, "acme")
    await top_up(rt, agent.id, 500_000, "BANK-1")
    before = await counts(rt)

    again = await top_up(rt, agent.id, 500_000, "BANK-1")
    conflict = await refused_code(
        rt, lambda s: agents.top_up(rt.db, s, agent.id, 400_000, reference="BANK-1", actor="finance")
    )

    assert again.balance_minor == 500_000
    assert conflict == "idempotency_conflict"
    assert await counts(rt) == before
    assert len(await audit_of(rt, "agent.topup")) == 1


async def test_the_same_reference_of_two_agents_is_two_top_ups(rt: Runtime) -> None:
    acme, zeta = await create(rt, "acme"), await create(rt, "zeta")

    await top_up(rt, acme.id, 100, "BANK-1")
    await top_up(rt, zeta.id, 200, "BANK-1")

    assert ((await held(rt, acme.id)).balance_minor, (await held(rt, zeta.id)).balance_minor) == (100, 200)


async def test_a_negative_top_up_is_an_adjustment_that_cannot_go_below_the_credit_limit(rt: Runtime) -> None:
    agent = await create(rt, "acme", credit_limit_minor=1_000)
    await top_up(rt, agent.id, 5_000, "BANK-1")

    assert (await top_up(rt, agent.id, -5_500, "FIX-1")).balance_minor == -500
    before = await counts(rt)
    refused = await refused_code(rt, lambda s: agents.top_up(rt.db, s, agent.id, -501, reference="FIX-2", actor="f"))

    assert refused == "insufficient_balance"
    assert await counts(rt) == before
    assert [e.after for e in await audit_of(rt, "agent.adjustment")] == [
        {"amount_minor": -5_500, "currency": "CNY", "reference": "FIX-1"}
    ]


@pytest.mark.parametrize(
    ("amount", "reference", "code"),
    [
        (0, "BANK-1", "bad_input"),
        (10**16, "BANK-1", "bad_input"),
        (-(10**16), "BANK-1", "bad_input"),
        (100, "", "bad_input"),
        (100, "r" * 65, "bad_input"),
    ],
    ids=["zero", "huge", "huge-negative", "no-reference", "reference-too-long"],
)
async def test_a_bad_top_up_is_refused_and_changes_nothing(rt: Runtime, amount: int, reference: str, code: str) -> None:
    agent = await create(rt, "a" * 48)
    before = await counts(rt)

    refused = await refused_code(
        rt, lambda s: agents.top_up(rt.db, s, agent.id, amount, reference=reference, actor="finance")
    )

    assert refused == code
    assert await counts(rt) == before


async def test_the_longest_agent_code_with_the_longest_reference_still_tops_up(rt: Runtime) -> None:
    agent = await create(rt, "a" * agents.MAX_CODE)

    balance = await top_up(rt, agent.id, 100, "r" * agents.MAX_REFERENCE)

    assert balance.balance_minor == 100


async def test_a_top_up_for_an_unknown_agent_is_not_found(rt: Runtime) -> None:
    refused = await refused_code(rt, lambda s: agents.top_up(rt.db, s, 999, 100, reference="BANK-1", actor="finance"))

    assert refused == "agent_not_found"


# --- credit limit, tier, status -----------------------------------------------------------------


async def test_a_credit_limit_change_moves_the_floor_and_is_refused_below_the_credit_in_use(rt: Runtime) -> None:
    agent = await create(rt, "acme", credit_limit_minor=3_000)
    await top_up(rt, agent.id, -2_000, "USED-CREDIT")

    async with rt.db.transaction() as session:
        await agents.update_agent(rt.db, session, agent.id, actor="finance", credit_limit_minor=5_000)
    assert (await held(rt, agent.id)).floor_minor == -5_000
    async with rt.db.transaction() as session:
        await agents.update_agent(rt.db, session, agent.id, actor="finance", credit_limit_minor=2_000)
    assert (await held(rt, agent.id)).floor_minor == -2_000
    before = await counts(rt)

    too_low = await refused_code(
        rt, lambda s: agents.update_agent(rt.db, s, agent.id, actor="finance", credit_limit_minor=1_999)
    )
    negative = await refused_code(
        rt, lambda s: agents.update_agent(rt.db, s, agent.id, actor="finance", credit_limit_minor=-1)
    )

    assert (too_low, negative) == ("floor_above_balance", "bad_input")
    assert await counts(rt) == before
    assert (await held(rt, agent.id)).floor_minor == -2_000
    async with rt.db.read() as session:
        assert (await agents.get_agent(session, agent.id)).credit_limit_minor == 2_000
    changes = [(e.before, e.after) for e in await audit_of(rt, "agent.updated")]
    assert [(b["credit_limit_minor"], a["credit_limit_minor"]) for b, a in changes if b and a] == [
        (3_000, 5_000),
        (5_000, 2_000),
    ]


async def test_an_agents_funds_are_its_balance_plus_its_credit_limit_as_the_ledger_holds_them(rt: Runtime) -> None:
    agent = await create(rt, "acme", credit_limit_minor=3_000)
    await top_up(rt, agent.id, -2_000, "USED-CREDIT")
    async with rt.db.transaction() as session:
        await agents.update_agent(rt.db, session, agent.id, actor="finance", credit_limit_minor=5_000)

    async with rt.db.read() as session:
        funds = await agents.funds(session, await agents.get_agent(session, agent.id))

    assert funds == BalanceOut(currency="CNY", balance_minor=-2_000, credit_limit_minor=5_000, available_minor=3_000)


async def test_an_agents_tier_name_and_status_change_and_each_change_is_audited(rt: Runtime) -> None:
    agent = await create(rt, "acme")

    async with rt.db.transaction() as session:
        await agents.update_agent(rt.db, session, agent.id, actor="ops", tier="gold", name="Acme 游戏")
        await agents.update_agent(rt.db, session, agent.id, actor="ops", status="suspended")

    async with rt.db.read() as session:
        changed = await agents.get_agent(session, agent.id)
    assert (changed.tier, changed.name, changed.status) == ("gold", "Acme 游戏", "suspended")
    assert [(e.before or {}).get("status") for e in await audit_of(rt, "agent.updated")] == ["active", "active"]
    assert [(e.after or {}).get("status") for e in await audit_of(rt, "agent.updated")] == ["active", "suspended"]


@pytest.mark.parametrize(
    "change",
    [{"status": "deleted"}, {"tier": "t" * 33}, {"name": ""}, {"credit_limit_minor": 10**19}],
    ids=["unknown-status", "tier-too-long", "empty-name", "credit-limit-beyond-64-bit"],
)
async def test_a_bad_agent_change_is_refused_and_changes_nothing(rt: Runtime, change: dict[str, Any]) -> None:
    agent = await create(rt, "acme")
    before = await counts(rt)

    assert await refused_code(rt, lambda s: agents.update_agent(rt.db, s, agent.id, actor="ops", **change)) == (
        "bad_input"
    )

    assert await counts(rt) == before


async def test_changing_an_unknown_agent_is_not_found(rt: Runtime) -> None:
    assert await refused_code(rt, lambda s: agents.update_agent(rt.db, s, 404, actor="ops", tier="x")) == (
        "agent_not_found"
    )


# --- keys ---------------------------------------------------------------------------------------


async def issue(rt: Runtime, agent_id: int, allowlist: list[str] | None = None) -> agents.IssuedKey:
    async with rt.db.transaction() as session:
        return await agents.issue_key(rt.db, session, rt.keyring, agent_id, ip_allowlist=allowlist or [], actor="ops")


async def material(rt: Runtime, key_id: str) -> agents.KeyMaterial | None:
    async with rt.db.read() as session:
        return await agents.key_material(rt.db, session, rt.keyring, key_id)


async def test_an_issued_key_has_the_documented_shape_and_its_secret_is_sealed_at_rest(rt: Runtime) -> None:
    agent = await create(rt, "acme")

    key = await issue(rt, agent.id)

    assert re.fullmatch(r"kq_ak_[0-9a-f]{16}", key.key_id)
    assert re.fullmatch(r"kq_sk_[A-Za-z0-9_-]{43}", key.secret)
    async with rt.db.read() as session:
        [row] = await agents.keys_of(session, agent.id)
    assert row.key_id == key.key_id
    assert key.secret.encode() not in row.secret_sealed
    found = await material(rt, key.key_id)
    assert found is not None
    assert (found.agent.id, found.secrets(clock.now()), found.revoked) == (agent.id, (key.secret,), False)
    assert await material(rt, request_signing.new_key_id()) is None


async def test_a_rotated_key_signs_with_both_secrets_until_the_grace_ends_then_with_the_new_one(rt: Runtime) -> None:
    agent = await create(rt, "acme")
    key = await issue(rt, agent.id)

    async with rt.db.transaction() as session:
        rotated = await agents.rotate_key(
            rt.db, session, rt.keyring, agent.id, key.key_id, grace=timedelta(hours=24), actor="ops"
        )

    assert (rotated.key_id, rotated.agent_id) == (key.key_id, agent.id)
    assert rotated.secret != key.secret
    found = await material(rt, key.key_id)
    assert found is not None
    assert found.secrets(clock.now()) == (rotated.secret, key.secret)
    assert found.secrets(clock.now() + timedelta(hours=23, minutes=59)) == (rotated.secret, key.secret)
    assert found.secrets(clock.now() + timedelta(hours=24, minutes=1)) == (rotated.secret,)
    clock.travel(timedelta(hours=25).total_seconds())
    later = await material(rt, key.key_id)
    assert later is not None and later.secrets(clock.now()) == (rotated.secret,)
    [audited] = await audit_of(rt, "agent.key_rotated")
    assert audited.target == key.key_id


async def test_a_revoked_key_stays_revoked_cannot_be_rotated_and_is_audited_once(rt: Runtime) -> None:
    agent = await create(rt, "acme")
    key = await issue(rt, agent.id)

    for _ in range(2):
        async with rt.db.transaction() as session:
            revoked = await agents.revoke_key(rt.db, session, agent.id, key.key_id, actor="ops")
            assert revoked.revoked_at is not None
    rotate = await refused_code(
        rt,
        lambda s: agents.rotate_key(rt.db, s, rt.keyring, agent.id, key.key_id, grace=timedelta(hours=1), actor="o"),
    )

    assert rotate == "key_revoked"
    found = await material(rt, key.key_id)
    assert found is not None and found.revoked
    assert len(await audit_of(rt, "agent.key_revoked")) == 1


async def test_a_key_is_managed_only_through_its_own_agent(rt: Runtime) -> None:
    acme, zeta = await create(rt, "acme"), await create(rt, "zeta")
    key = await issue(rt, acme.id)
    before = await counts(rt)

    for change in (
        lambda s: agents.revoke_key(rt.db, s, zeta.id, key.key_id, actor="ops"),
        lambda s: agents.rotate_key(rt.db, s, rt.keyring, zeta.id, key.key_id, grace=timedelta(hours=1), actor="o"),
        lambda s: agents.set_allowlist(rt.db, s, zeta.id, key.key_id, ["10.0.0.1"], actor="ops"),
    ):
        assert await refused_code(rt, change) == "key_not_found"
    assert await counts(rt) == before
    assert await refused_code(
        rt, lambda s: agents.issue_key(rt.db, s, rt.keyring, 404, ip_allowlist=[], actor="o")
    ) == ("agent_not_found")


async def test_an_allowlist_is_stored_as_networks_and_a_bad_entry_is_refused_by_its_number(rt: Runtime) -> None:
    agent = await create(rt, "acme")
    key = await issue(rt, agent.id, [" 198.51.100.7 ", "203.0.113.9/24", "2001:db8::/32"])
    async with rt.db.read() as session:
        [row] = await agents.keys_of(session, agent.id)
    assert row.ip_allowlist == ["198.51.100.7/32", "203.0.113.0/24", "2001:db8::/32"]
    before = await counts(rt)

    with pytest.raises(DomainError) as refused:
        async with rt.db.transaction() as session:
            await agents.set_allowlist(rt.db, session, agent.id, key.key_id, ["10.0.0.1", "10.0.0.300"], actor="o")

    assert (refused.value.code, refused.value.details["field"]) == ("bad_input", "ip_allowlist")
    assert "entry 2" in refused.value.message
    assert await counts(rt) == before
    assert await refused_code(
        rt, lambda s: agents.issue_key(rt.db, s, rt.keyring, agent.id, ip_allowlist=[""], actor="o")
    ) == ("bad_input")


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("198.51.100.7", True),
        ("198.51.100.8", False),
        ("203.0.113.200", True),
        ("203.0.114.1", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
        ("unknown", False),
    ],
)
def test_an_address_is_allowed_when_a_listed_network_holds_it(ip: str, allowed: bool) -> None:
    allowlist = ("198.51.100.7/32", "203.0.113.0/24", "2001:db8::/32")

    assert agents.ip_allowed(allowlist, ip) is allowed
    assert agents.ip_allowed((), ip), "an empty allowlist admits every address"


async def test_no_secret_ever_reaches_the_audit_trail(rt: Runtime) -> None:
    agent = await given_agent(rt)
    async with rt.db.transaction() as session:
        rotated = await agents.rotate_key(
            rt.db, session, rt.keyring, agent.id, agent.key_id, grace=timedelta(hours=1), actor="ops"
        )
        await agents.set_allowlist(rt.db, session, agent.id, agent.key_id, ["10.0.0.0/8"], actor="ops")
        await agents.revoke_key(rt.db, session, agent.id, agent.key_id, actor="ops")

    trail = await every_audit_entry_as_text(rt)

    assert agent.key_id in trail
    for secret in (agent.secret, rotated.secret):
        assert secret not in trail
        assert secret.removeprefix("kq_sk_") not in trail
