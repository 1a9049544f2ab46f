"""Server-side sessions: only a hash is stored; they end on idle, on age, on logout and on a password change."""

import pytest
from sqlalchemy import select
from tests.support.identity import PASSWORD, given_user, row_counts

from kaquan import identity
from kaquan.identity import Identity, NewSession
from kaquan.identity.errors import LoginFailed, WeakPassword, WrongPassword
from kaquan.identity.models import AdminSession
from kaquan.kit import clock
from kaquan.kit.errors import RateLimited
from kaquan.runtime import Runtime


async def login(rt: Runtime, password: str = PASSWORD) -> NewSession:
    return await identity.login(
        rt.db, rt.keyring, rt.limiter, username="alice", password=password, totp=None, ip="1.2.3.4"
    )


async def me(rt: Runtime, opened: NewSession) -> Identity:
    found = await identity.authenticate_session(rt.db, opened.token)
    assert found is not None
    return found


async def test_a_session_is_stored_as_a_hash_with_its_own_csrf_token(rt: Runtime) -> None:
    await given_user(rt, role="support")
    opened = await login(rt)

    async with rt.db.read() as session:
        [row] = (await session.execute(select(AdminSession))).scalars().all()
    assert opened.token.encode() not in row.token_hash and len(row.token_hash) == 32
    assert row.csrf_token == opened.csrf_token and len(opened.csrf_token) >= 40
    assert row.expires_at == opened.expires_at
    found = await me(rt, opened)
    assert (found.username, found.role, found.via, found.session_id) == ("alice", "support", "session", row.id)
    assert found.csrf_token == opened.csrf_token
    assert await identity.authenticate_session(rt.db, opened.token + "x") is None
    assert await identity.authenticate_session(rt.db, "") is None


async def test_a_session_left_idle_for_30_minutes_ends(rt: Runtime) -> None:
    await given_user(rt)
    opened = await login(rt)
    clock.travel(29 * 60)
    await me(rt, opened)  # use keeps it alive
    clock.travel(29 * 60)
    await me(rt, opened)

    clock.travel(30 * 60)

    assert await identity.authenticate_session(rt.db, opened.token) is None


async def test_a_session_ends_after_12_hours_however_busy(rt: Runtime) -> None:
    await given_user(rt)
    opened = await login(rt)
    for _ in range(int(identity.ABSOLUTE_TIMEOUT.total_seconds() // 1200) - 1):
        clock.travel(1200)
        await me(rt, opened)

    clock.travel(1200)

    assert await identity.authenticate_session(rt.db, opened.token) is None


async def test_logout_ends_the_session_and_is_audited(rt: Runtime) -> None:
    await given_user(rt)
    opened = await login(rt)
    other = await login(rt)
    async with rt.db.transaction() as session:
        await identity.logout(session, await me(rt, opened), ip="1.2.3.4")

    assert await identity.authenticate_session(rt.db, opened.token) is None
    assert await identity.authenticate_session(rt.db, other.token) is not None


async def test_a_password_change_ends_every_session_and_the_old_password(rt: Runtime) -> None:
    await given_user(rt)
    first, second = await login(rt), await login(rt)
    new_password = "a brand new passphrase"

    async with rt.db.transaction() as session:
        revoked, fresh = await identity.change_password(
            session, rt.limiter, await me(rt, first), PASSWORD, new_password
        )

    assert revoked == 2
    assert fresh is not None and fresh.token not in (first.token, second.token)
    assert await identity.authenticate_session(rt.db, first.token) is None
    assert await identity.authenticate_session(rt.db, second.token) is None
    assert await identity.authenticate_session(rt.db, fresh.token) is not None
    with pytest.raises(LoginFailed):
        await login(rt, PASSWORD)
    await login(rt, new_password)


@pytest.mark.parametrize(
    ("current", "new", "error"),
    [
        ("not my password!", "a brand new passphrase", WrongPassword),
        (PASSWORD, "too short", WeakPassword),
        (PASSWORD, PASSWORD, WeakPassword),
    ],
    ids=["wrong-current", "weak-new", "same-as-old"],
)
async def test_a_refused_password_change_changes_nothing(
    rt: Runtime, current: str, new: str, error: type[Exception]
) -> None:
    await given_user(rt)
    opened = await login(rt)
    before = await row_counts(rt)

    with pytest.raises(error):
        async with rt.db.transaction() as session:
            await identity.change_password(session, rt.limiter, await me(rt, opened), current, new)

    assert await row_counts(rt) == before
    assert await identity.authenticate_session(rt.db, opened.token) is not None
    await login(rt)


async def test_password_changes_are_throttled_so_a_stolen_session_is_no_password_oracle(rt: Runtime) -> None:
    await given_user(rt)
    caller = await me(rt, await login(rt))
    for n in range(identity.PASSWORD_CHANGES_PER_USER):
        with pytest.raises(WrongPassword):
            async with rt.db.transaction() as session:
                await identity.change_password(
                    session, rt.limiter, caller, f"guess number {n}", "a brand new passphrase"
                )

    with pytest.raises(RateLimited):
        async with rt.db.transaction() as session:
            await identity.change_password(session, rt.limiter, caller, PASSWORD, "a brand new passphrase")


async def test_disabling_a_user_ends_its_sessions(rt: Runtime) -> None:
    owner = await given_user(rt, "boss")
    user = await given_user(rt, "alice", "operator")
    opened = await login(rt)
    by = Identity(owner.id, "boss", "owner", frozenset(), "session", False)

    async with rt.db.transaction() as session:
        await identity.set_disabled(session, by, user.id, True)

    assert await identity.authenticate_session(rt.db, opened.token) is None
    async with rt.db.transaction() as session:
        await identity.set_disabled(session, by, user.id, False)
    assert await identity.authenticate_session(rt.db, opened.token) is None  # ended, not paused
    await login(rt)
