"""API tokens: shown once, stored hashed, scoped within the role, expiring and revocable."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from tests.support.identity import given_user, row_counts

from kaquan.audit.models import AuditEntry
from kaquan.identity import service as identity
from kaquan.identity.errors import ScopeNotAllowed, TokenNotFound
from kaquan.identity.models import ApiToken
from kaquan.identity.permissions import ROLES, Permission
from kaquan.kit import clock
from kaquan.runtime import Runtime

P = Permission


async def new_token(
    rt: Runtime, user_id: int, scopes: list[Permission], *, allowed: frozenset[Permission], days: int = 30
) -> tuple[ApiToken, str]:
    async with rt.db.transaction() as session:
        return await identity.create_token(
            session, user_id, "ci", scopes, expires_in_days=days, allowed=allowed, actor="test"
        )


async def test_a_token_is_shown_once_and_stored_only_as_a_hash(rt: Runtime) -> None:
    user = await given_user(rt, role="operator")
    row, token = await new_token(rt, user.id, [P.CATALOG_READ, P.STOCK_WRITE], allowed=ROLES["operator"])

    assert token.startswith(row.prefix + "_") and row.prefix.startswith("kqt_") and len(token) > 50
    async with rt.db.read() as session:
        stored = (await session.execute(select(ApiToken))).scalar_one()
        audit = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "identity.token.created"))
        ).scalar_one()
    assert token.encode() not in stored.token_hash
    assert stored.scopes == ["catalog.read", "stock.write"]
    assert stored.expires_at == stored.created_at + timedelta(days=30)
    assert token not in str(audit.after) and audit.after is not None and audit.after["prefix"] == row.prefix
    found = await identity.authenticate_token(rt.db, token)
    assert found is not None
    assert (found.username, found.via, found.token_id) == ("alice", "token", row.id)
    assert found.permissions == {P.CATALOG_READ, P.STOCK_WRITE}
    assert found.actor == f"alice (token {row.prefix})"


@pytest.mark.parametrize("wrong", ["", "kqt_", "kqs_whatever", "Bearer x", "kqt_00000000_" + "A" * 43])
async def test_anything_but_a_live_token_is_nobody(rt: Runtime, wrong: str) -> None:
    user = await given_user(rt)
    await new_token(rt, user.id, [P.CATALOG_READ], allowed=ROLES["owner"])

    assert await identity.authenticate_token(rt.db, wrong) is None


async def test_a_scope_outside_the_role_is_refused_and_changes_nothing(rt: Runtime) -> None:
    user = await given_user(rt, role="support")
    before = await row_counts(rt)

    with pytest.raises(ScopeNotAllowed) as refused:
        await new_token(rt, user.id, [P.ORDERS_READ, P.FINANCE_WRITE], allowed=ROLES["support"])

    assert refused.value.details == {"scopes": ["finance.write"]}
    assert await row_counts(rt) == before


async def test_a_token_cannot_hand_out_more_than_its_creator_holds(rt: Runtime) -> None:
    user = await given_user(rt)  # an owner
    _, narrow = await new_token(rt, user.id, [P.CATALOG_READ, P.ACCOUNT_SELF], allowed=ROLES["owner"])
    creator = await identity.authenticate_token(rt.db, narrow)
    assert creator is not None

    with pytest.raises(ScopeNotAllowed):
        await new_token(rt, user.id, [P.USERS_MANAGE], allowed=creator.permissions)
    await new_token(rt, user.id, [P.CATALOG_READ], allowed=creator.permissions)


async def test_a_token_never_outgrows_its_users_role(rt: Runtime) -> None:
    """Scopes are checked again on every use: scopes ∩ role, whatever the row says."""
    user = await given_user(rt, role="support")
    row, token = await new_token(rt, user.id, [P.ORDERS_READ], allowed=ROLES["support"])
    async with rt.db.transaction() as session:
        stored = await session.get(ApiToken, row.id)
        assert stored is not None
        stored.scopes = ["orders.read", "finance.write", "no.such.permission"]

    found = await identity.authenticate_token(rt.db, token)

    assert found is not None and found.permissions == {P.ORDERS_READ}


async def test_a_token_expires(rt: Runtime) -> None:
    user = await given_user(rt)
    _, token = await new_token(rt, user.id, [P.CATALOG_READ], allowed=ROLES["owner"], days=1)
    clock.travel(86_399)
    assert await identity.authenticate_token(rt.db, token) is not None

    clock.travel(1)

    assert await identity.authenticate_token(rt.db, token) is None


async def test_a_revoked_token_is_refused_and_revoking_twice_is_harmless(rt: Runtime) -> None:
    user = await given_user(rt)
    row, token = await new_token(rt, user.id, [P.CATALOG_READ], allowed=ROLES["owner"])
    async with rt.db.transaction() as session:
        await identity.revoke_token(session, user.id, row.id, actor="alice")
    assert await identity.authenticate_token(rt.db, token) is None
    before = await row_counts(rt)

    async with rt.db.transaction() as session:
        again = await identity.revoke_token(session, user.id, row.id, actor="alice")

    assert again.revoked_at is not None
    assert await row_counts(rt) == before


async def test_nobody_revokes_another_users_token(rt: Runtime) -> None:
    alice = await given_user(rt)
    bob = await given_user(rt, "bob")
    row, token = await new_token(rt, alice.id, [P.CATALOG_READ], allowed=ROLES["owner"])
    before = await row_counts(rt)

    with pytest.raises(TokenNotFound):
        async with rt.db.transaction() as session:
            await identity.revoke_token(session, bob.id, row.id, actor="bob")

    assert await row_counts(rt) == before
    assert await identity.authenticate_token(rt.db, token) is not None


async def test_a_disabled_users_tokens_stop_working(rt: Runtime) -> None:
    owner = await given_user(rt, "boss")
    user = await given_user(rt, "alice", "finance")
    _, token = await new_token(rt, user.id, [P.FINANCE_READ], allowed=ROLES["finance"])
    by = identity.Identity(owner.id, "boss", "owner", frozenset(), "session", False)

    async with rt.db.transaction() as session:
        await identity.set_disabled(session, by, user.id, True)

    assert await identity.authenticate_token(rt.db, token) is None


async def test_the_token_list_holds_no_secret(rt: Runtime) -> None:
    user = await given_user(rt)
    _, token = await new_token(rt, user.id, [P.CATALOG_READ], allowed=ROLES["owner"])
    async with rt.db.read() as session:
        [listed] = await identity.list_tokens(session, user.id)

    assert token not in repr(vars(listed))
