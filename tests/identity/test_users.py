"""Admin users: creation rules, sign-in throttled per address (never a lock on the owner), and two-factor codes."""

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from tests.support.identity import PASSWORD, given_user, row_counts, user_row

from kaquan import identity
from kaquan.audit.models import AuditEntry
from kaquan.identity import NewSession, credentials, throttle
from kaquan.identity.credentials import totp_code, totp_step
from kaquan.identity.errors import (
    LoginFailed,
    LoginThrottled,
    TotpInvalid,
    TotpRequired,
    UnknownRole,
    UsernameTaken,
    WeakPassword,
)
from kaquan.kit import clock
from kaquan.kit.errors import DomainError, RateLimited
from kaquan.kit.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from kaquan.runtime import Runtime


async def login(rt: Runtime, username: str, password: str, totp: str | None = None, ip: str = "10.0.0.1") -> NewSession:
    return await identity.login(rt.db, rt.keyring, rt.limiter, username=username, password=password, totp=totp, ip=ip)


async def audit_text(rt: Runtime) -> str:
    async with rt.db.read() as session:
        entries = (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all()
    return "\n".join(f"{e.actor} {e.action} {e.target} {e.before} {e.after}" for e in entries)


async def actions(rt: Runtime) -> list[str]:
    async with rt.db.read() as session:
        return list((await session.execute(select(AuditEntry.action).order_by(AuditEntry.id))).scalars())


# --- creating users -----------------------------------------------------------------------------------


async def test_a_user_gets_an_argon2id_hash_and_an_audit_entry_without_the_password(rt: Runtime) -> None:
    user = await given_user(rt, "Alice", "finance")

    stored = await user_row(rt, "alice")
    assert user.username == stored.username == "alice"
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert stored.role == "finance" and not stored.disabled and not stored.totp_enabled
    assert await actions(rt) == ["identity.user.created"]
    said = await audit_text(rt)
    assert "alice" in said and "finance" in said
    assert PASSWORD not in said and stored.password_hash not in said


@pytest.mark.parametrize(
    "password",
    ["short-pass1", "", "x" * 257, "alice-is-the-best-admin", "aaaaaaaaaaaaaaaa", "abababababababab"],
    ids=["11-chars", "empty", "too-long", "has-username", "one-char", "two-chars"],
)
async def test_a_weak_password_is_refused_and_changes_nothing(rt: Runtime, password: str) -> None:
    before = await row_counts(rt)

    with pytest.raises(WeakPassword):
        await given_user(rt, "alice", password=password)

    assert await row_counts(rt) == before


async def test_twelve_characters_are_enough(rt: Runtime) -> None:
    await given_user(rt, "alice", password="kx7-Qz!m29pL")


async def test_a_duplicate_username_is_refused_whatever_its_case_and_changes_nothing(rt: Runtime) -> None:
    await given_user(rt, "alice")
    before = await row_counts(rt)

    with pytest.raises(UsernameTaken):
        await given_user(rt, "ALICE ")

    assert await row_counts(rt) == before


async def test_an_unknown_role_is_refused_and_changes_nothing(rt: Runtime) -> None:
    before = await row_counts(rt)

    with pytest.raises(UnknownRole):
        await given_user(rt, "alice", role="root")

    assert await row_counts(rt) == before


# --- signing in ---------------------------------------------------------------------------------------


async def test_the_right_password_opens_a_session_and_resets_the_failure_count(rt: Runtime) -> None:
    await given_user(rt)
    with pytest.raises(LoginFailed):
        await login(rt, "alice", "wrong password 1")
    assert (await user_row(rt, "alice")).failed_logins == 1

    opened = await login(rt, "alice", PASSWORD)

    row = await user_row(rt, "alice")
    assert row.failed_logins == 0 and row.last_login_at is not None
    assert opened.username == "alice" and opened.role == "owner"
    assert (await identity.authenticate_session(rt.db, opened.token)) is not None


def _limiter(redis: Redis | None) -> RateLimiter:
    """Redis when configured; else in process, its windows following `kit.clock` so tests can travel."""
    return RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter(lambda: clock.now().timestamp())


async def signs_in(limiter: RateLimiter, rt: Runtime, password: str, ip: str, username: str = "alice") -> str:
    """How one attempt ends: "ok", or the refusal's error code."""
    try:
        await identity.login(rt.db, rt.keyring, limiter, username=username, password=password, totp=None, ip=ip)
    except DomainError as exc:
        return exc.code
    return "ok"


@pytest.mark.parametrize("addresses", [5, 50])
async def test_wrong_passwords_from_many_addresses_never_lock_the_owner_out(
    rt: Runtime, redis_or_none: Redis | None, addresses: int
) -> None:
    limiter = _limiter(redis_or_none)
    await given_user(rt)

    guesses = [await signs_in(limiter, rt, f"wrong password {n}", f"203.0.113.{n}") for n in range(addresses)]
    owner = await signs_in(limiter, rt, PASSWORD, "198.51.100.7")

    assert guesses == ["login_failed"] * addresses
    assert owner == "ok"
    assert (await actions(rt)).count("identity.login.failed") == addresses
    assert (await actions(rt))[-1] == "identity.session.created"
    assert (await row_counts(rt))["identity_sessions"] == 1


async def test_one_address_guessing_is_refused_with_retry_after_even_for_the_right_password(
    rt: Runtime, redis_or_none: Redis | None
) -> None:
    limiter = _limiter(redis_or_none)
    await given_user(rt)
    for n in range(throttle.PAIR_FAILURES):
        assert await signs_in(limiter, rt, f"wrong password {n}", "203.0.113.1") == "login_failed"
    before = await row_counts(rt)

    with pytest.raises(LoginThrottled) as refused:
        await identity.login(
            rt.db, rt.keyring, limiter, username="alice", password=PASSWORD, totp=None, ip="203.0.113.1"
        )

    assert refused.value.status == 429 and 1 <= refused.value.retry_after <= throttle.WINDOW_S
    assert await row_counts(rt) == before  # no session, no audit entry for a refused attempt
    assert await signs_in(limiter, rt, PASSWORD, "198.51.100.7") == "ok"


async def test_an_account_under_attack_refuses_every_address_that_failed_against_it_but_no_other(
    rt: Runtime, redis_or_none: Redis | None
) -> None:
    limiter = _limiter(redis_or_none)
    await given_user(rt)
    for n in range(throttle.ACCOUNT_FAILURES):
        assert await signs_in(limiter, rt, "wrong password", f"203.0.113.{n}") == "login_failed"

    again = await signs_in(limiter, rt, PASSWORD, "203.0.113.0")
    fresh_guess = await signs_in(limiter, rt, "wrong password", "203.0.113.99")
    fresh_again = await signs_in(limiter, rt, "wrong password", "203.0.113.99")
    owner = await signs_in(limiter, rt, PASSWORD, "198.51.100.7")

    assert (again, fresh_guess, fresh_again, owner) == ("login_throttled", "login_failed", "login_throttled", "ok")


async def test_a_throttled_address_may_try_again_once_its_window_has_passed(rt: Runtime) -> None:
    limiter = _limiter(None)
    await given_user(rt)
    for n in range(throttle.PAIR_FAILURES):
        await signs_in(limiter, rt, f"wrong password {n}", "203.0.113.1")
    assert await signs_in(limiter, rt, PASSWORD, "203.0.113.1") == "login_throttled"

    clock.travel(throttle.WINDOW_S)

    assert await signs_in(limiter, rt, PASSWORD, "203.0.113.1") == "ok"


async def test_the_right_password_costs_no_attempt(rt: Runtime, redis_or_none: Redis | None) -> None:
    limiter = _limiter(redis_or_none)
    await given_user(rt)
    outcomes = [await signs_in(limiter, rt, "wrong password", "203.0.113.1") for _ in range(throttle.PAIR_FAILURES - 1)]
    outcomes += [await signs_in(limiter, rt, PASSWORD, "203.0.113.1") for _ in range(3)]
    outcomes += [await signs_in(limiter, rt, "wrong password", "203.0.113.1") for _ in range(2)]

    assert outcomes == ["login_failed"] * 4 + ["ok"] * 3 + ["login_failed", "login_throttled"]


async def test_one_address_spraying_many_accounts_is_refused(rt: Runtime) -> None:
    limiter = _limiter(None)
    await given_user(rt)
    outcomes = []
    for n in range(throttle.ADDRESS_FAILURES + 1):
        if n and n % identity.LOGINS_PER_IP_PER_MINUTE == 0:
            clock.travel(60)  # past the per-minute limit on every attempt, which is a separate control
        outcomes.append(await signs_in(limiter, rt, PASSWORD, "203.0.113.1", username=f"user{n}"))

    assert outcomes == ["login_failed"] * throttle.ADDRESS_FAILURES + ["login_throttled"]
    assert await signs_in(limiter, rt, PASSWORD, "203.0.113.1") == "login_throttled"
    assert await signs_in(limiter, rt, PASSWORD, "198.51.100.7") == "ok"


async def test_unknown_and_known_usernames_are_throttled_alike(rt: Runtime) -> None:
    limiter = _limiter(None)
    await given_user(rt)

    known = [await signs_in(limiter, rt, "wrong password", "203.0.113.1") for _ in range(throttle.PAIR_FAILURES + 1)]
    unknown = [
        await signs_in(limiter, rt, "wrong password", "203.0.113.2", username="mallory")
        for _ in range(throttle.PAIR_FAILURES + 1)
    ]

    assert known == unknown == ["login_failed"] * throttle.PAIR_FAILURES + ["login_throttled"]


async def test_concurrent_guesses_from_one_address_get_no_more_tries(rt: Runtime, redis_or_none: Redis | None) -> None:
    """Never more: at most PAIR_FAILURES guesses are tried. With Redis a refused guess holds its charge for a
    round trip before the refund, so a burst may be refused a little early, never admitted late."""
    limiter = _limiter(redis_or_none)
    await given_user(rt)

    outcomes = await asyncio.gather(
        *(signs_in(limiter, rt, f"wrong password {n}", "203.0.113.1") for n in range(identity.LOGINS_PER_IP_PER_MINUTE))
    )

    tried = outcomes.count("login_failed")
    assert 1 <= tried <= throttle.PAIR_FAILURES, outcomes
    assert outcomes.count("login_throttled") == len(outcomes) - tried, outcomes
    if redis_or_none is None:  # one process, no await inside a hit: the count is exact
        assert tried == throttle.PAIR_FAILURES
    assert (await user_row(rt, "alice")).failed_logins == tried


async def test_an_unknown_user_gets_the_same_answer_after_the_same_argon2_work(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await given_user(rt)
    verified: list[str | None] = []
    real = credentials.Passwords.verify

    def spy(self: credentials.Passwords, stored: str | None, password: str) -> bool:
        verified.append(stored)
        return real(self, stored, password)

    monkeypatch.setattr(credentials.Passwords, "verify", spy)
    before = await row_counts(rt)

    with pytest.raises(LoginFailed) as unknown:
        await login(rt, "mallory", PASSWORD)
    with pytest.raises(LoginFailed) as wrong:
        await login(rt, "alice", "not the password")

    assert unknown.value.to_dict() == wrong.value.to_dict()
    assert len(verified) == 2
    assert verified[0] is None and verified[1] is not None  # a dummy hash is verified for the unknown user
    after = await row_counts(rt)
    assert {k: v for k, v in after.items() if k != "audit_entries"} == {
        k: v for k, v in before.items() if k != "audit_entries"
    }


async def test_a_disabled_user_cannot_sign_in(rt: Runtime) -> None:
    owner = await given_user(rt, "boss")
    user = await given_user(rt, "alice", "support")
    by = identity.Identity(owner.id, "boss", "owner", frozenset(), "session", False)
    async with rt.db.transaction() as session:
        await identity.set_disabled(session, by, user.id, True)

    with pytest.raises(LoginFailed):
        await login(rt, "alice", PASSWORD)


async def test_sign_in_attempts_are_throttled_per_address(rt: Runtime, redis_or_none: Redis | None) -> None:
    """In process, and across processes through Redis when it is configured."""
    limiter: RateLimiter = RedisRateLimiter(redis_or_none) if redis_or_none is not None else MemoryRateLimiter()
    await given_user(rt)

    async def attempt(username: str, ip: str) -> NewSession:
        return await identity.login(rt.db, rt.keyring, limiter, username=username, password=PASSWORD, totp=None, ip=ip)

    for n in range(identity.LOGINS_PER_IP_PER_MINUTE):
        with pytest.raises(LoginFailed):
            await attempt(f"nobody{n}", "10.9.9.9")

    with pytest.raises(RateLimited):
        await attempt("alice", "10.9.9.9")
    assert (await attempt("alice", "10.9.9.10")).username == "alice"


async def test_a_failed_sign_in_is_audited_as_anonymous_without_the_password(rt: Runtime) -> None:
    await given_user(rt)

    with pytest.raises(LoginFailed):
        await login(rt, "alice", "hunter2-hunter2")

    async with rt.db.read() as session:
        entry = (await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))).scalar_one()
    assert (entry.actor, entry.action, entry.ip) == ("anonymous", "identity.login.failed", "10.0.0.1")
    assert entry.after is not None and entry.after["username"] == "alice" and entry.after["failed_logins"] == 1
    assert "hunter2" not in await audit_text(rt)


# --- two-factor codes -----------------------------------------------------------------------------------


def test_totp_matches_the_rfc_6238_vectors() -> None:
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"
    assert totp_code(secret, 59 // 30) == "287082"
    assert totp_code(secret, 1111111109 // 30) == "081804"
    assert totp_code(secret, 1234567890 // 30) == "005924"


async def enrolled(rt: Runtime) -> tuple[identity.Identity, str]:
    """alice with two-factor sign-in on; returns her identity and the TOTP secret."""
    opened = await login(rt, "alice", PASSWORD)
    me = await identity.authenticate_session(rt.db, opened.token)
    assert me is not None
    async with rt.db.transaction() as session:
        secret, uri = await identity.start_totp(rt.db, session, rt.keyring, me)
    assert uri.startswith("otpauth://totp/kaquan%3Aalice?secret=")
    async with rt.db.transaction() as session:
        await identity.confirm_totp(rt.db, session, rt.keyring, me, totp_code(secret, totp_step(clock.now())))
    return me, secret


async def test_totp_is_sealed_at_rest_and_then_required_at_sign_in(rt: Runtime) -> None:
    await given_user(rt)
    _, secret = await enrolled(rt)
    row = await user_row(rt, "alice")
    assert row.totp_enabled and row.totp_sealed is not None
    assert secret.encode() not in row.totp_sealed
    assert secret not in await audit_text(rt)
    clock.travel(30)

    with pytest.raises(TotpRequired):
        await login(rt, "alice", PASSWORD)
    opened = await login(rt, "alice", PASSWORD, totp=totp_code(secret, totp_step(clock.now())))

    assert opened.username == "alice"


async def test_a_wrong_totp_code_at_confirmation_changes_nothing(rt: Runtime) -> None:
    await given_user(rt)
    me = await identity.authenticate_session(rt.db, (await login(rt, "alice", PASSWORD)).token)
    assert me is not None
    async with rt.db.transaction() as session:
        secret, _ = await identity.start_totp(rt.db, session, rt.keyring, me)
    before = await row_counts(rt)
    wrong = f"{(int(totp_code(secret, totp_step(clock.now()))) + 1) % 10**6:06d}"

    with pytest.raises(TotpInvalid):
        async with rt.db.transaction() as session:
            await identity.confirm_totp(rt.db, session, rt.keyring, me, wrong)

    assert not (await user_row(rt, "alice")).totp_enabled
    assert await row_counts(rt) == before


@pytest.mark.parametrize(
    ("offset_steps", "accepted"),
    [(-3, False), (-2, False), (-1, True), (0, True), (1, True), (2, False)],
)
async def test_a_totp_code_is_accepted_one_step_either_side_and_no_further(
    rt: Runtime, offset_steps: int, accepted: bool
) -> None:
    await given_user(rt)
    _, secret = await enrolled(rt)
    clock.travel(300)
    code = totp_code(secret, totp_step(clock.now()) + offset_steps)

    if accepted:
        assert (await login(rt, "alice", PASSWORD, totp=code)).username == "alice"
    else:
        with pytest.raises(LoginFailed):
            await login(rt, "alice", PASSWORD, totp=code)
        assert (await user_row(rt, "alice")).failed_logins == 1


async def test_a_used_totp_code_cannot_be_replayed_inside_its_window(rt: Runtime) -> None:
    await given_user(rt)
    _, secret = await enrolled(rt)
    clock.travel(60)
    code = totp_code(secret, totp_step(clock.now()))
    await login(rt, "alice", PASSWORD, totp=code)
    sessions: dict[str, Any] = {"before": (await row_counts(rt))["identity_sessions"]}

    with pytest.raises(LoginFailed):
        await login(rt, "alice", PASSWORD, totp=code)
    clock.travel(20)  # still inside the ±1 step window
    with pytest.raises(LoginFailed):
        await login(rt, "alice", PASSWORD, totp=code)

    assert (await row_counts(rt))["identity_sessions"] == sessions["before"]
    assert (await user_row(rt, "alice")).failed_logins == 2


async def test_wrong_totp_codes_are_throttled_like_wrong_passwords(rt: Runtime) -> None:
    await given_user(rt)
    _, secret = await enrolled(rt)
    clock.travel(60)
    wrong = "000000" if totp_code(secret, totp_step(clock.now())) != "000000" else "111111"
    for _ in range(throttle.PAIR_FAILURES):
        with pytest.raises(LoginFailed):
            await login(rt, "alice", PASSWORD, totp=wrong)

    with pytest.raises(LoginThrottled):
        await login(rt, "alice", PASSWORD, totp=totp_code(secret, totp_step(clock.now())))
    assert (await user_row(rt, "alice")).failed_logins == throttle.PAIR_FAILURES
    opened = await login(rt, "alice", PASSWORD, totp=totp_code(secret, totp_step(clock.now())), ip="198.51.100.7")
    assert opened.username == "alice"
