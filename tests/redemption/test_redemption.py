"""Redemption (核销): once only, harmless to re-submit, clear about why not, and closed to brute force."""

import asyncio
import logging
import secrets
from datetime import timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from tests.support.builders import given_codes, given_sku, random_codes, stock_of
from tests.support.vouchers import events, given_voucher_sku, given_vouchers, redemption_count, status_of

from kaquan import redemption
from kaquan.audit.models import AuditEntry
from kaquan.inventory.lifecycle import transition
from kaquan.inventory.models import Code
from kaquan.kit import clock, outbox
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.kit.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from kaquan.redemption import Lockout, RedeemRequest
from kaquan.redemption.models import Redemption
from kaquan.redemption.vouchers import display
from kaquan.runtime import Runtime

ACTOR = "clerk@shop"
ACCOUNT = "admin_user:7"
IP = "203.0.113.7"


def scan(code: str, *, nonce: str | None = None, device: str = "till-1", **extra: object) -> RedeemRequest:
    return RedeemRequest(
        code=code,
        nonce=secrets.token_hex(8) if nonce is None else nonce,
        device_id=device,
        location="Store 12, Shanghai",
        **extra,  # type: ignore[arg-type]
    )


async def redeem_once(rt: Runtime, request: RedeemRequest, *, actor: str = ACTOR) -> redemption.Redeemed:
    """One attempt in one transaction, no retry and no lockout: the database's answer alone."""
    async with rt.db.transaction() as session:
        return await redemption.redeem(rt.db, session, rt.vault, request, actor=actor, ip=IP)


async def attempt(
    rt: Runtime,
    lockout: Lockout,
    request: RedeemRequest,
    *,
    actor: str = ACTOR,
    account: str = ACCOUNT,
    ip: str = IP,
) -> redemption.Redeemed | str:
    """A guarded attempt as the API makes it; a refusal becomes its error code."""
    try:
        return await redemption.attempt_redemption(
            rt.db, rt.vault, lockout, request, actor=actor, account=account, ip=ip
        )
    except DomainError as exc:
        return exc.code


# --- once ------------------------------------------------------------------------------------------


async def test_a_sold_voucher_is_redeemed_once_with_who_where_and_when(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku, order_id=77)

    done = await redeem_once(rt, scan(code))

    assert done.redeemed_by == ACTOR
    assert (done.location, done.device_id, done.order_id, done.sku_id) == ("Store 12, Shanghai", "till-1", 77, sku.id)
    assert done.offline is False and done.redeemed_offline_at is None
    assert done.code_hint == "…" + code[-4:]
    assert abs(done.redeemed_at - clock.now()) < timedelta(seconds=5)
    assert await status_of(rt, code) == "redeemed"
    stock = await stock_of(rt, sku)
    assert (stock.sold, stock.redeemed, stock.available) == (1, 1, 0)
    assert stock.adds_up
    async with rt.db.read() as session:
        row = (await session.execute(select(Redemption))).scalar_one()
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "voucher.redeemed"))).scalar_one()
    assert (row.actor, row.ip, row.offline) == (ACTOR, IP, False)
    assert (entry.actor, entry.ip, entry.target) == (ACTOR, IP, f"code:{done.code_id}")


async def test_the_printed_typed_or_scanned_form_redeems_the_same_voucher(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    codes = await given_vouchers(rt, sku, 3)

    for typed in (display(codes[0]), display(codes[1]).lower(), "  " + display(codes[2]).replace("-", " ") + "\n"):
        await redeem_once(rt, scan(typed))

    assert [await status_of(rt, code) for code in codes] == ["redeemed"] * 3


async def test_the_same_scan_again_returns_the_same_result_and_redeems_nothing_more(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    request = scan(code, nonce="scan-0001-abcdef")

    first = await redeem_once(rt, request)
    clock.travel(60)
    again = await redeem_once(rt, scan(display(code).lower(), nonce="scan-0001-abcdef", device="till-9"))

    assert again == first
    assert await redemption_count(rt) == 1
    assert len(await events(rt)) == 1


async def test_any_other_second_attempt_says_when_and_where_it_was_redeemed(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    first = await redeem_once(rt, scan(code))

    with pytest.raises(redemption.AlreadyRedeemed) as refused:
        await redeem_once(rt, scan(code, device="till-2"))

    assert refused.value.status == 409
    details = refused.value.details
    assert details["redeemed_at"] == first.redeemed_at.isoformat()
    assert (details["location"], details["device_id"]) == ("Store 12, Shanghai", "till-1")
    assert await redemption_count(rt) == 1


async def test_an_offline_redemption_is_stored_and_flagged_with_the_devices_time(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    happened = clock.now() - timedelta(hours=3)

    done = await redeem_once(rt, scan(code, redeemed_offline_at=happened))

    assert done.offline is True
    assert done.redeemed_offline_at == happened
    assert done.redeemed_at > happened
    async with rt.db.read() as session:
        row = (await session.execute(select(Redemption))).scalar_one()
    assert row.offline is True and row.redeemed_offline_at == happened
    [event] = await events(rt)
    assert event.payload["offline"] is True


# --- the outbox -------------------------------------------------------------------------------------


async def test_the_redeemed_event_goes_out_with_the_order_and_never_the_code(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku, order_id=9001)
    done = await redeem_once(rt, scan(code))

    [event] = await events(rt)
    assert event.payload["order_id"] == 9001
    assert event.payload["code_id"] == done.code_id
    assert code not in repr(event.payload) and code[-8:] not in repr(event.payload)
    with caplog.at_level(logging.INFO, logger="kaquan.notifications"):
        assert await outbox.run_due(rt.db) == 1
    assert "order 9001" in caplog.text and "redeemed" in caplog.text
    assert code not in caplog.text


async def test_a_failed_redemption_sends_no_event(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku, sold=False)

    with pytest.raises(redemption.VoucherNotSold):
        await redeem_once(rt, scan(code))

    assert await events(rt) == []


# --- what cannot be redeemed, each changing nothing ---------------------------------------------------


async def _unchanged(rt: Runtime, code: str, status: str) -> None:
    assert await status_of(rt, code) == status
    assert await redemption_count(rt) == 0
    assert await events(rt) == []


async def test_an_unsold_voucher_cannot_be_redeemed(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku, sold=False)

    with pytest.raises(redemption.VoucherNotSold) as refused:
        await redeem_once(rt, scan(code))

    assert (refused.value.status, refused.value.code) == (409, "voucher_not_sold")
    await _unchanged(rt, code, "available")


async def test_a_reserved_voucher_cannot_be_redeemed(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku, sold=False)
    async with rt.db.transaction() as session:
        await transition(session, Code, Code.sku_id == sku.id, source="available", target="reserved", order_id=5)

    with pytest.raises(redemption.VoucherNotSold):
        await redeem_once(rt, scan(code))

    await _unchanged(rt, code, "reserved")


async def test_a_voided_voucher_cannot_be_redeemed(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    async with rt.db.transaction() as session:
        await transition(session, Code, Code.sku_id == sku.id, source="sold", target="voided")

    with pytest.raises(redemption.VoucherVoided) as refused:
        await redeem_once(rt, scan(code))

    assert refused.value.code == "voucher_voided"
    await _unchanged(rt, code, "voided")


async def test_an_expired_voucher_cannot_be_redeemed(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku, expires_on=clock.now().date() - timedelta(days=1))

    with pytest.raises(redemption.VoucherExpired):
        await redeem_once(rt, scan(code))

    await _unchanged(rt, code, "sold")


async def test_a_sold_code_that_is_not_a_voucher_cannot_be_redeemed(rt: Runtime) -> None:
    sku = await given_sku(rt)
    [code] = random_codes(1)
    await given_codes(rt, sku, [code])
    async with rt.db.transaction() as session:
        await transition(session, Code, Code.sku_id == sku.id, source="available", target="sold", order_id=3)

    with pytest.raises(redemption.NotAVoucher):
        await redeem_once(rt, scan(code))

    await _unchanged(rt, code, "sold")


async def test_an_unknown_code_is_voucher_not_found(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    wrong = code[:-1] + ("A" if code[-1] != "A" else "B")

    with pytest.raises(redemption.VoucherNotFound) as refused:
        await redeem_once(rt, scan(wrong))

    assert (refused.value.status, refused.value.code) == (404, "voucher_not_found")
    assert wrong not in str(refused.value.to_dict())
    await _unchanged(rt, code, "sold")


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (dict(code=""), "voucher_code_invalid"),
        (dict(code=" - -  "), "voucher_code_invalid"),
        (dict(code="A" * 65), "voucher_code_invalid"),
        (dict(nonce=""), "bad_input"),
        (dict(nonce="short"), "bad_input"),
        (dict(nonce="has spaces in it"), "bad_input"),
        (dict(device=""), "bad_input"),
        (dict(redeemed_offline_at=clock.now().replace(tzinfo=None)), "bad_input"),
        (dict(redeemed_offline_at=clock.now() + timedelta(hours=1)), "bad_input"),
    ],
    ids=["empty", "only-dashes", "overlong", "no-nonce", "short-nonce", "bad-nonce", "no-device", "naive", "future"],
)
async def test_bad_requests_are_refused_clearly_and_change_nothing(
    rt: Runtime, request_: dict[str, object], error: str
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    fields: dict[str, object] = {"code": code, **request_}

    with pytest.raises(DomainError) as refused:
        await redeem_once(rt, scan(**fields))  # type: ignore[arg-type]

    assert refused.value.code == error
    assert refused.value.status == 400
    await _unchanged(rt, code, "sold")


# --- concurrency ----------------------------------------------------------------------------------


async def _race(rt: Runtime, requests: list[RedeemRequest]) -> list[redemption.Redeemed | str]:
    async def one(request: RedeemRequest) -> redemption.Redeemed | str:
        try:
            return await redeem_once(rt, request)
        except DomainError as exc:
            return exc.code

    return await asyncio.gather(*(one(r) for r in requests))


async def test_without_the_row_lock_concurrent_redemptions_get_no_clean_answer(
    rt: Runtime, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race is real: with the lock off and a pause after reading, the losers see errors, not an answer."""
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    monkeypatch.setattr("kaquan.redemption.redeeming._pause_after_lookup", 0.2)

    with db.unprotected():
        outcomes = await _race(rt, [scan(code) for _ in range(5)])

    wins = [o for o in outcomes if isinstance(o, redemption.Redeemed)]
    assert len(wins) == 1
    # The guarded update still keeps the code redeemed once, but the others were not told why.
    assert any(o not in ("voucher_already_redeemed",) for o in outcomes if isinstance(o, str)), outcomes
    assert await redemption_count(rt) == 1


async def test_twenty_concurrent_redemptions_of_one_code_redeem_it_exactly_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    monkeypatch.setattr("kaquan.redemption.redeeming._pause_after_lookup", 0.01)

    outcomes = await _race(rt, [scan(code, device=f"till-{n}") for n in range(20)])

    wins = [o for o in outcomes if isinstance(o, redemption.Redeemed)]
    assert len(wins) == 1
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["voucher_already_redeemed"] * 19
    assert await redemption_count(rt) == 1
    assert len(await events(rt)) == 1
    assert (await stock_of(rt, sku)).redeemed == 1


async def test_twenty_concurrent_copies_of_one_scan_all_succeed_identically_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    monkeypatch.setattr("kaquan.redemption.redeeming._pause_after_lookup", 0.01)

    outcomes = await _race(rt, [scan(code, nonce="one-scan-nonce-1") for _ in range(20)])

    assert all(isinstance(o, redemption.Redeemed) for o in outcomes), outcomes
    assert len(set(outcomes)) == 1
    assert await redemption_count(rt) == 1
    assert len(await events(rt)) == 1


# --- lockout --------------------------------------------------------------------------------------


def _limiter(redis: Redis | None) -> RateLimiter:
    return MemoryRateLimiter() if redis is None else RedisRateLimiter(redis)


async def test_brute_force_guessing_is_locked_out_after_ten_failures_even_for_a_valid_code(
    rt: Runtime, redis_or_none: Redis | None
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    lockout = Lockout(_limiter(redis_or_none))

    guesses = [await attempt(rt, lockout, scan(secrets.token_hex(10))) for _ in range(30)]
    valid = await attempt(rt, lockout, scan(code))

    assert guesses[: redemption.FAILURE_LIMIT] == ["voucher_not_found"] * redemption.FAILURE_LIMIT
    assert set(guesses[redemption.FAILURE_LIMIT :]) == {"redeem_locked_out"}
    assert valid == "redeem_locked_out"
    await _unchanged(rt, code, "sold")


async def test_the_lockout_says_which_scope_and_when_to_retry(rt: Runtime) -> None:
    lockout = Lockout(MemoryRateLimiter(), limit=2)
    for _ in range(2):
        await attempt(rt, lockout, scan("NOPE" * 5))

    with pytest.raises(redemption.RedeemLockedOut) as refused:
        await redemption.attempt_redemption(
            rt.db, rt.vault, lockout, scan("NOPE" * 5), actor=ACTOR, account=ACCOUNT, ip=IP
        )

    assert refused.value.status == 429
    assert 1 <= refused.value.retry_after <= redemption.LOCKOUT_WINDOW_S
    assert sorted(refused.value.details["locked"]) == ["account", "device", "ip"]


async def test_ip_account_and_device_are_each_locked_out(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    codes = await given_vouchers(rt, sku, 4)
    lockout = Lockout(MemoryRateLimiter(), limit=3)
    for n in range(3):  # the same account and IP, a new device each time
        await attempt(rt, lockout, scan("UNKNOWN" + str(n), device=f"d{n}"))

    same_account = await attempt(rt, lockout, scan(codes[0], device="fresh"), ip="198.51.100.1")
    same_ip = await attempt(rt, lockout, scan(codes[1], device="fresh"), account="other-clerk")
    elsewhere = await attempt(rt, lockout, scan(codes[2], device="fresh"), account="other-clerk", ip="198.51.100.1")
    for n in range(3):  # one device, many accounts and IPs
        await attempt(rt, lockout, scan("UNKNOWN", device="stolen"), account=f"a{n}", ip=f"192.0.2.{n}")
    same_device = await attempt(rt, lockout, scan(codes[3], device="stolen"), account="new", ip="192.0.2.99")

    assert same_account == "redeem_locked_out"
    assert same_ip == "redeem_locked_out"
    assert isinstance(elsewhere, redemption.Redeemed)
    assert same_device == "redeem_locked_out"


async def test_one_account_is_one_count_whatever_token_it_acts_through(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    lockout = Lockout(MemoryRateLimiter(), limit=3)
    for n in range(3):  # a fresh token (actor), address and device each time: the same user
        await attempt(rt, lockout, scan("UNKNOWN", device=f"d{n}"), actor=f"clerk (token kqt_{n})", ip=f"192.0.2.{n}")

    valid = await attempt(rt, lockout, scan(code, device="d9"), actor="clerk (token kqt_9)", ip="192.0.2.9")

    assert valid == "redeem_locked_out"
    await _unchanged(rt, code, "sold")


async def test_successes_and_answers_about_real_codes_do_not_count_as_failures(
    rt: Runtime, redis_or_none: Redis | None
) -> None:
    sku = await given_voucher_sku(rt)
    codes = await given_vouchers(rt, sku, 6)
    [unsold] = await given_vouchers(rt, sku, 1, sold=False)
    lockout = Lockout(_limiter(redis_or_none), limit=3)

    outcomes = []
    for code in codes:
        outcomes.append(await attempt(rt, lockout, scan(code)))
        outcomes.append(await attempt(rt, lockout, scan(code)))  # already redeemed
        outcomes.append(await attempt(rt, lockout, scan(unsold)))  # not sold

    assert all(isinstance(o, redemption.Redeemed) for o in outcomes[::3])
    assert set(outcomes[1::3]) == {"voucher_already_redeemed"}
    assert set(outcomes[2::3]) == {"voucher_not_sold"}


async def test_verifying_is_limited_and_counted_like_redeeming(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    lockout = Lockout(MemoryRateLimiter(), limit=3)

    async def verify(typed: str) -> str:
        try:
            found = await redemption.attempt_verification(
                rt.db, rt.vault, lockout, typed, account=ACCOUNT, ip=IP, device_id="till-1"
            )
        except DomainError as exc:
            return exc.code
        return found.state

    before = [await verify(code) for _ in range(5)]
    guesses = [await verify("GUESS" + str(n)) for n in range(3)]
    after = await verify(code)

    assert before == ["redeemable"] * 5
    assert guesses == ["voucher_not_found"] * 3
    assert after == "redeem_locked_out"
    assert await status_of(rt, code) == "sold"


async def test_concurrent_guesses_cannot_overrun_the_limit(rt: Runtime) -> None:
    lockout = Lockout(MemoryRateLimiter(), limit=5)

    outcomes = await asyncio.gather(*(attempt(rt, lockout, scan(secrets.token_hex(10))) for _ in range(40)))

    assert outcomes.count("voucher_not_found") == 5
    assert outcomes.count("redeem_locked_out") == 35


async def test_the_lockout_holds_across_processes_sharing_redis(rt: Runtime, redis_or_none: Redis | None) -> None:
    if redis_or_none is None:
        pytest.skip("the in-process lockout is for one process by design; Redis shares it")
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    first, second = Lockout(RedisRateLimiter(redis_or_none)), Lockout(RedisRateLimiter(redis_or_none))

    for n in range(redemption.FAILURE_LIMIT):
        assert await attempt(rt, first if n % 2 else second, scan(secrets.token_hex(10))) == "voucher_not_found"

    assert await attempt(rt, second, scan(code)) == "redeem_locked_out"
    assert await attempt(rt, first, scan(code)) == "redeem_locked_out"
