"""Redemption (核销) of vouchers: once only, harmless to re-submit, and hard to brute-force.

- A code is found by its keyed fingerprint of the canonical form
  (`vouchers.normalize`): the plaintext is never compared, so lookups take no
  time that depends on how much of a guess was right.
- The code's row is locked (`Database.lock`: `FOR UPDATE` on PostgreSQL; SQLite
  writers are serialized by `BEGIN IMMEDIATE`) and moved sold → redeemed by the
  lifecycle's guarded update; the unique `code_id` of `inventory_redemptions`
  is the database's own guarantee of once.
- The client sends a nonce per scan: re-submitting the same scan returns the
  first result unchanged; any other second attempt is told when and where the
  code was redeemed.
- Attempts are limited per IP, per account and per device (`Lockout`). The
  account is the user behind the credential, never a token or session: those
  are free to mint, so a counter keyed on them would multiply attempts. Every
  attempt is charged to all three counters before it runs and refunded when it
  did not fail, so even a thousand concurrent guesses cannot get past the limit.
  A failure is an attempt naming no code we hold (unknown or malformed); real
  codes answered "already redeemed", "not sold" and so on do not count.

`attempt_redemption` and `attempt_verification` are transaction boundaries
themselves (like `payments.notifications.receive`): the attempt counters
straddle the transaction, so a success is refunded only once it has committed.
"""

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal, TypeVar

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.inventory import Vault
from kaquan.inventory.lifecycle import transition
from kaquan.inventory.models import Code
from kaquan.kit import clock, outbox
from kaquan.kit.crypto import same_digest
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Conflict, NotFound, RateLimited
from kaquan.kit.ratelimit import RateLimiter
from kaquan.redemption.models import Redemption
from kaquan.redemption.vouchers import is_voucher_sku, normalize

log = logging.getLogger(__name__)
T = TypeVar("T")

FAILURE_LIMIT = 10
LOCKOUT_WINDOW_S = 15 * 60
MAX_CODE_LENGTH = 64
OFFLINE_CLOCK_SKEW = timedelta(minutes=5)
REDEEMED_TOPIC = "voucher.redeemed"
_NONCE = re.compile(r"[A-Za-z0-9_.:-]{8,64}")
CodeRow = Row[int, int, str, int | None, date | None]  # id, sku_id, status, order_id, expires_on
_pause_after_lookup = 0.0  # test-only: widen the window between reading a code and redeeming it


class VoucherCodeInvalid(BadInput):
    code = "voucher_code_invalid"


class VoucherNotFound(NotFound):
    code = "voucher_not_found"


class NotAVoucher(Conflict):
    code = "not_a_voucher"


class VoucherNotSold(Conflict):
    code = "voucher_not_sold"


class VoucherVoided(Conflict):
    code = "voucher_voided"


class VoucherExpired(Conflict):
    code = "voucher_expired"


class AlreadyRedeemed(Conflict):
    code = "voucher_already_redeemed"


class RedeemLockedOut(RateLimited):
    """Too many failed attempts from this IP, account or device: every attempt is refused for a while."""

    code = "redeem_locked_out"

    def __init__(self, scopes: list[str], *, retry_after: int) -> None:
        super().__init__(
            f"too many failed redemption attempts ({', '.join(scopes)}); try again in {retry_after} s",
            retry_after=retry_after,
        )
        self.details["locked"] = scopes


# Only these answers count against the caller's attempts.
FAILURES = (VoucherNotFound, VoucherCodeInvalid)  # what a code guesser meets: counted by the lockout and risk


@dataclass(frozen=True)
class RedeemRequest:
    code: str = field(repr=False)
    nonce: str
    device_id: str
    location: str
    redeemed_offline_at: datetime | None = None


@dataclass(frozen=True)
class Redeemed:
    """A redemption as every caller sees it; a re-submitted scan gets exactly this back."""

    redemption_id: int
    code_id: int
    code_hint: str
    sku_id: int
    order_id: int | None
    redeemed_at: datetime
    redeemed_by: str
    device_id: str
    location: str
    offline: bool
    redeemed_offline_at: datetime | None


VoucherStateName = Literal["redeemable", "redeemed", "not_sold", "voided", "expired"]


@dataclass(frozen=True)
class VoucherState:
    """What a code would answer to a redemption, without redeeming it."""

    state: VoucherStateName
    code_id: int
    code_hint: str
    sku_id: int
    order_id: int | None
    expires_on: date | None
    redemption: Redeemed | None = None


@dataclass(frozen=True)
class Lockout:
    """Failed-attempt counters per IP, account and device, over fixed windows (Redis across processes)."""

    limiter: RateLimiter
    limit: int = FAILURE_LIMIT
    window_s: int = LOCKOUT_WINDOW_S

    @staticmethod
    def keys(*, ip: str | None, account: str, device_id: str | None) -> dict[str, str]:
        """The counters of one attempt; `account` names the user, whichever token or session it came through."""
        keys = {"ip": f"redeem:ip:{ip or 'unknown'}", "account": f"redeem:account:{account}"}
        if device_id:
            keys["device"] = f"redeem:device:{device_id}"
        return keys

    async def admit(self, keys: dict[str, str]) -> None:
        """Charge one attempt to every counter; refuse (charging nothing) if any is at its limit."""
        waits = {
            scope: await self.limiter.hit(key, limit=self.limit, window_s=self.window_s) for scope, key in keys.items()
        }
        locked = [scope for scope, wait in waits.items() if wait]
        if locked:
            await self.refund(keys)
            log.warning("redemption attempts refused: locked out by %s", ", ".join(locked))
            raise RedeemLockedOut(locked, retry_after=max(waits.values()))

    async def refund(self, keys: dict[str, str]) -> None:
        for key in keys.values():
            await self.limiter.undo(key, window_s=self.window_s)

    async def guard(self, keys: dict[str, str], work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` as one attempt: refused when locked out, counted only if it fails."""
        await self.admit(keys)
        failed = False
        try:
            return await work()
        except FAILURES:
            failed = True
            raise
        finally:
            if not failed:
                await self.refund(keys)


def canonical_code(typed: str) -> str:
    """The stored form of a typed code, or `voucher_code_invalid` (never echoing the code)."""
    code = normalize(typed)
    if not code or len(code) > MAX_CODE_LENGTH or not code.isprintable():
        raise VoucherCodeInvalid(
            f"a voucher code is 1 to {MAX_CODE_LENGTH} printable characters (dashes and spaces ignored)",
            length=len(code),
        )
    return code


def check_request(request: RedeemRequest) -> None:
    """Everything about a redemption request except the code, checked before it costs an attempt."""
    if _NONCE.fullmatch(request.nonce) is None:
        raise BadInput("the nonce is 8 to 64 characters of A-Z, a-z, 0-9, '_', '.', ':' or '-'", field="nonce")
    if not 1 <= len(request.device_id) <= 64 or not request.device_id.isprintable():
        raise BadInput("the device id is 1 to 64 printable characters", field="device_id")
    if not request.location.strip() or len(request.location) > 200 or not request.location.isprintable():
        raise BadInput("the location is 1 to 200 printable characters", field="location")
    offline_at = request.redeemed_offline_at
    if offline_at is not None:
        if offline_at.tzinfo is None:
            raise BadInput("redeemed_offline_at needs a time zone", field="redeemed_offline_at")
        if offline_at > clock.now() + OFFLINE_CLOCK_SKEW:
            raise BadInput("redeemed_offline_at is in the future", field="redeemed_offline_at")


def _hint(code: str) -> str:
    return "…" + code[-4:]


async def _locate(db: Database, session: AsyncSession, vault: Vault, typed: str, *, lock: bool) -> tuple[CodeRow, str]:
    code = canonical_code(typed)
    stmt = select(Code.id, Code.sku_id, Code.status, Code.order_id, Code.expires_on).where(
        Code.fingerprint == vault.fingerprints.of(None, code)
    )
    found = (await session.execute(db.lock(stmt) if lock else stmt)).one_or_none()
    if found is None:
        raise VoucherNotFound("no voucher has this code")
    if not await is_voucher_sku(session, found.sku_id):
        raise NotAVoucher("this code is not a voucher issued for redemption here", code_id=found.id)
    return found, code


async def _redemption_of(session: AsyncSession, code_id: int) -> Redemption | None:
    return (await session.execute(select(Redemption).where(Redemption.code_id == code_id))).scalar_one_or_none()


def _redeemed(row: Redemption, hint: str) -> Redeemed:
    return Redeemed(
        redemption_id=row.id,
        code_id=row.code_id,
        code_hint=hint,
        sku_id=row.sku_id,
        order_id=row.order_id,
        redeemed_at=row.redeemed_at,
        redeemed_by=row.actor,
        device_id=row.device_id,
        location=row.location,
        offline=row.offline,
        redeemed_offline_at=row.redeemed_offline_at,
    )


def _already(row: Redemption | None, code_id: int) -> AlreadyRedeemed:
    if row is None:
        return AlreadyRedeemed("this voucher was redeemed already", code_id=code_id)
    return AlreadyRedeemed(
        f"this voucher was redeemed already, at {row.redeemed_at.isoformat()} in {row.location}",
        code_id=code_id,
        redeemed_at=row.redeemed_at.isoformat(),
        location=row.location,
        device_id=row.device_id,
        offline=row.offline,
    )


def _expired(expires_on: date | None) -> bool:
    return expires_on is not None and expires_on < clock.now().date()


async def redeem(
    db: Database, session: AsyncSession, vault: Vault, request: RedeemRequest, *, actor: str, ip: str | None
) -> Redeemed:
    """Redeem a sold voucher once; the same nonce again returns the same result. No commit."""
    check_request(request)
    found, code = await _locate(db, session, vault, request.code, lock=True)
    if _pause_after_lookup:
        await asyncio.sleep(_pause_after_lookup)
    if found.status == "redeemed":
        done = await _redemption_of(session, found.id)
        if done is not None and same_digest(done.nonce.encode(), request.nonce.encode()):
            return _redeemed(done, _hint(code))
        raise _already(done, found.id)
    if found.status in ("available", "reserved"):
        raise VoucherNotSold("this voucher has not been sold, so it cannot be redeemed", code_id=found.id)
    if found.status == "voided":
        raise VoucherVoided("this voucher was voided and cannot be redeemed", code_id=found.id)
    if _expired(found.expires_on):
        raise VoucherExpired(
            f"this voucher expired on {found.expires_on}", code_id=found.id, expires_on=str(found.expires_on)
        )
    await transition(session, Code, Code.id == found.id, source="sold", target="redeemed", expected=1)
    row = Redemption(
        code_id=found.id,
        sku_id=found.sku_id,
        order_id=found.order_id,
        nonce=request.nonce,
        redeemed_at=clock.now(),
        redeemed_offline_at=request.redeemed_offline_at,
        offline=request.redeemed_offline_at is not None,
        actor=actor,
        ip=ip,
        device_id=request.device_id,
        location=request.location.strip(),
    )
    session.add(row)
    await session.flush()
    summary = {
        "redemption_id": row.id,
        "location": row.location,
        "device_id": row.device_id,
        "offline": row.offline,
    }
    await outbox.enqueue(
        session,
        REDEEMED_TOPIC,
        {
            **summary,
            "code_id": found.id,
            "sku_id": found.sku_id,
            "order_id": found.order_id,
            "redeemed_at": row.redeemed_at.isoformat(),
            "redeemed_offline_at": row.redeemed_offline_at.isoformat() if row.redeemed_offline_at else None,
        },
    )
    await audit.record(
        session,
        actor,
        "voucher.redeemed",
        target=f"code:{found.id}",
        before={"status": "sold"},
        after={"status": "redeemed", **summary},
        ip=ip,
    )
    return _redeemed(row, _hint(code))


async def verify(db: Database, session: AsyncSession, vault: Vault, typed: str) -> VoucherState:
    """What redeeming `typed` would answer, changing nothing."""
    found, code = await _locate(db, session, vault, typed, lock=False)
    redemption = None
    state: VoucherStateName
    if found.status == "redeemed":
        state = "redeemed"
        done = await _redemption_of(session, found.id)
        redemption = _redeemed(done, _hint(code)) if done is not None else None
    elif found.status in ("available", "reserved"):
        state = "not_sold"
    elif found.status == "voided":
        state = "voided"
    else:
        state = "expired" if _expired(found.expires_on) else "redeemable"
    return VoucherState(state, found.id, _hint(code), found.sku_id, found.order_id, found.expires_on, redemption)


async def attempt_redemption(
    db: Database,
    vault: Vault,
    lockout: Lockout,
    request: RedeemRequest,
    *,
    actor: str,
    account: str,
    ip: str | None,
) -> Redeemed:
    """One redemption attempt by a caller, in its own transaction, guarded by the lockout.

    `actor` is what the audit trail names (it may include a token); `account` is the user it counts against.
    """
    check_request(request)
    keys = lockout.keys(ip=ip, account=account, device_id=request.device_id)

    async def work(session: AsyncSession) -> Redeemed:
        return await redeem(db, session, vault, request, actor=actor, ip=ip)

    return await lockout.guard(keys, lambda: db.run(work))


async def attempt_verification(
    db: Database,
    vault: Vault,
    lockout: Lockout,
    typed: str,
    *,
    account: str,
    ip: str | None,
    device_id: str | None,
) -> VoucherState:
    """One verification by a caller: read-only, but guarded and counted exactly like a redemption."""
    if device_id is not None and (not 1 <= len(device_id) <= 64 or not device_id.isprintable()):
        raise BadInput("the device id is 1 to 64 printable characters", field="device_id")
    keys = lockout.keys(ip=ip, account=account, device_id=device_id)

    async def work() -> VoucherState:
        async with db.read() as session:
            return await verify(db, session, vault, typed)

    return await lockout.guard(keys, work)
