"""API tokens: shown once, stored hashed, scoped within the role, expiring and revocable."""

from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from tests.support.identity import given_user, row_counts

from kaquan import identity
from kaquan.all_models import metadata
from kaquan.audit.models import AuditEntry
from kaquan.identity.errors import ScopeNotAllowed, TokenNotFound
from kaquan.identity.models import AdminUser, ApiToken
from kaquan.identity.permissions import ROLES, Permission
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import Unauthorized
from kaquan.kit.migrate import downgrade, upgrade
from kaquan.runtime import Runtime

P = Permission
LINEAGE = "a1d3e7f0c104"  # the migration that added token lineage


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


# --- tokens minted by tokens -----------------------------------------------------------------------------


async def child_of(rt: Runtime, parent: str, scopes: list[Permission], *, days: int = 366) -> tuple[ApiToken, str]:
    """A token created by the token `parent`, as POST /admin/api/tokens does with a bearer token."""
    creator = await identity.authenticate_token(rt.db, parent)
    assert creator is not None and creator.token_id is not None
    async with rt.db.transaction() as session:
        return await identity.create_token(
            session,
            creator.user_id,
            "child",
            scopes,
            expires_in_days=days,
            allowed=creator.permissions,
            actor=creator.actor,
            parent_id=creator.token_id,
        )


async def test_a_child_token_never_outlives_its_parent(rt: Runtime) -> None:
    user = await given_user(rt)
    parent_row, parent = await new_token(rt, user.id, [P.CATALOG_READ, P.ACCOUNT_SELF], allowed=ROLES["owner"], days=1)

    child_row, child = await child_of(rt, parent, [P.CATALOG_READ], days=366)
    grandchild_row, grandchild = await child_of(rt, child, [P.CATALOG_READ], days=366)

    assert child_row.expires_at == grandchild_row.expires_at == parent_row.expires_at
    assert (child_row.parent_id, grandchild_row.parent_id) == (parent_row.id, child_row.id)
    clock.travel(86_400)
    assert await identity.authenticate_token(rt.db, child) is None
    assert await identity.authenticate_token(rt.db, grandchild) is None


async def test_a_child_token_never_out_scopes_its_parent(rt: Runtime) -> None:
    user = await given_user(rt)
    _, parent = await new_token(rt, user.id, [P.CATALOG_READ, P.ACCOUNT_SELF], allowed=ROLES["owner"])
    before = await row_counts(rt)

    with pytest.raises(ScopeNotAllowed):
        await child_of(rt, parent, [P.CATALOG_READ, P.CATALOG_WRITE])

    assert await row_counts(rt) == before


async def test_revoking_a_token_revokes_its_children_and_their_children_at_once(rt: Runtime) -> None:
    user = await given_user(rt)
    parent_row, parent = await new_token(rt, user.id, [P.CATALOG_READ, P.ACCOUNT_SELF], allowed=ROLES["owner"])
    _, sibling = await new_token(rt, user.id, [P.CATALOG_READ], allowed=ROLES["owner"])
    child_row, child = await child_of(rt, parent, [P.CATALOG_READ, P.ACCOUNT_SELF])
    grandchild_row, grandchild = await child_of(rt, child, [P.CATALOG_READ])

    async with rt.db.transaction() as session:
        await identity.revoke_token(session, user.id, parent_row.id, actor="alice")

    for dead in (parent, child, grandchild):
        assert await identity.authenticate_token(rt.db, dead) is None
    assert await identity.authenticate_token(rt.db, sibling) is not None
    async with rt.db.read() as session:
        listed = {t.id: t for t in await identity.list_tokens(session, user.id)}
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "identity.token.revoked"))
        ).scalar_one()
    assert listed[child_row.id].revoked_at is not None and listed[grandchild_row.id].revoked_at is not None
    assert entry.after is not None and entry.after["descendants_revoked"] == [child_row.prefix, grandchild_row.prefix]


async def test_a_token_revoked_after_it_authenticated_mints_nothing(rt: Runtime) -> None:
    """The parent row is locked and re-checked as the child is created: no child of a revoked token."""
    user = await given_user(rt)
    parent_row, parent = await new_token(rt, user.id, [P.CATALOG_READ, P.ACCOUNT_SELF], allowed=ROLES["owner"])
    creator = await identity.authenticate_token(rt.db, parent)
    assert creator is not None
    async with rt.db.transaction() as session:
        await identity.revoke_token(session, user.id, parent_row.id, actor="alice")
    before = await row_counts(rt)

    with pytest.raises(Unauthorized):
        async with rt.db.transaction() as session:
            await identity.create_token(
                session,
                user.id,
                "late child",
                [P.CATALOG_READ],
                expires_in_days=30,
                allowed=creator.permissions,
                actor=creator.actor,
                parent_id=parent_row.id,
            )

    assert await row_counts(rt) == before


async def test_a_downgraded_role_narrows_every_token_at_once(rt: Runtime) -> None:
    user = await given_user(rt, role="finance")
    _, token = await new_token(rt, user.id, [P.FINANCE_READ, P.FINANCE_WRITE], allowed=ROLES["finance"])
    async with rt.db.transaction() as session:
        stored = await session.get(AdminUser, user.id)
        assert stored is not None
        stored.role = "auditor"

    found = await identity.authenticate_token(rt.db, token)

    assert found is not None and found.permissions == {P.FINANCE_READ}


async def test_disabling_a_user_revokes_its_tokens_for_good(rt: Runtime) -> None:
    owner = await given_user(rt, "boss")
    user = await given_user(rt, "alice", "finance")
    _, token = await new_token(rt, user.id, [P.FINANCE_READ], allowed=ROLES["finance"])
    by = identity.Identity(owner.id, "boss", "owner", frozenset(), "session", False)

    async with rt.db.transaction() as session:
        await identity.set_disabled(session, by, user.id, True)
    async with rt.db.transaction() as session:
        await identity.set_disabled(session, by, user.id, False)

    assert await identity.authenticate_token(rt.db, token) is None


async def test_the_migration_links_capped_and_revokes_children_minted_before_lineage_was_kept(db: Database) -> None:
    """Children minted before `parent_id` existed are found through the audit trail and held to the rules."""
    await downgrade(db, f"{LINEAGE}-1")
    now = clock.now()
    tokens = metadata.tables["identity_api_tokens"]
    rows = [  # id, prefix, created by (prefix), lifetime, revoked
        (1, "kqt_0000000a", None, timedelta(days=1), None),
        (2, "kqt_0000000b", "kqt_0000000a", timedelta(days=366), None),
        (3, "kqt_0000000c", "kqt_0000000b", timedelta(days=366), None),
        (4, "kqt_0000000d", None, timedelta(days=90), now),
        (5, "kqt_0000000e", "kqt_0000000d", timedelta(days=90), None),
        (6, "kqt_0000000f", None, timedelta(days=90), None),
    ]
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(metadata.tables["identity_users"]).values(
                id=1,
                username="alice",
                password_hash="x",
                role="owner",
                disabled=False,
                failed_logins=0,
                totp_enabled=False,
                created_at=now,
                password_changed_at=now,
            )
        )
        for token_id, prefix, by, lifetime, revoked in rows:
            await conn.execute(
                insert(tokens).values(
                    id=token_id,
                    user_id=1,
                    name="t",
                    prefix=prefix,
                    token_hash=bytes([token_id]) * 32,
                    scopes=["catalog.read"],
                    created_at=now,
                    expires_at=now + lifetime,
                    revoked_at=revoked,
                )
            )
            await conn.execute(
                insert(metadata.tables["audit_entries"]).values(
                    id=token_id,
                    at=now,
                    actor=f"alice (token {by})" if by else "alice",
                    action="identity.token.created",
                    target=f"api_token:{token_id}",
                    prev_hash="",
                    hash="",
                )
            )

    await upgrade(db)

    for _ in ("upgraded", "downgraded with the rows in place and upgraded again"):
        async with db.read() as session:
            after = {t.id: t for t in (await session.execute(select(ApiToken))).scalars()}
        assert [after[n].parent_id for n in range(1, 7)] == [None, 1, 2, None, 4, None]
        assert after[2].expires_at == after[3].expires_at == after[1].expires_at
        assert after[5].revoked_at == after[4].revoked_at
        assert after[6].revoked_at is None and after[6].expires_at == now + timedelta(days=90)
        await downgrade(db, f"{LINEAGE}-1")
        await upgrade(db)
