"""Proof-of-work challenges: signed, expiring, single use, harder as the score rises; no third party.

A challenge is the token `v1:<action>:<bits>:<expires unix>:<nonce>:<signature>`, the signature an
HMAC-SHA256 (under the `risk.challenge` key) of everything before it. The client finds a number `n`
such that SHA-256 of `<token>:<n>` starts with `bits` zero bits (about 2^bits hashes: 16 bits take a
browser well under a second, a bot farm the same for every single request), and sends `<token>:<n>`
back. A solution is accepted once: its nonce is spent in Redis (SET NX) or in `risk_used_nonces`.
"""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.exceptions import RedisError
from sqlalchemy import Table, delete

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import Busy
from kaquan.kit.keyvalue import RedisClient
from kaquan.risk.models import RiskUsedNonce

VERSION = "v1"
MAX_SOLUTION = 300


class SpentNonces(Protocol):
    async def spend(self, nonce: str, *, until: int) -> bool:
        """Mark the nonce used until the unix time `until`; False when it was used before."""
        ...

    async def prune(self) -> None: ...


class RedisSpentNonces:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def spend(self, nonce: str, *, until: int) -> bool:
        ttl = max(1, until - int(clock.now().timestamp()))
        try:
            return bool(await self._redis.set(f"kaquan:risk:pow:{{{nonce}}}", b"1", nx=True, ex=ttl))
        except RedisError as exc:
            raise Busy("risk control is busy; try again", retry_after=1) from exc

    async def prune(self) -> None:
        """Redis expires the keys itself."""


class DatabaseSpentNonces:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def spend(self, nonce: str, *, until: int) -> bool:
        table: Table = RiskUsedNonce.__table__  # type: ignore[assignment]
        stmt = self._db.insert(table).values(nonce=nonce, expires_at=datetime.fromtimestamp(until, UTC))
        async with self._db.transaction() as session:
            result = await session.execute(stmt.on_conflict_do_nothing(index_elements=["nonce"]))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def prune(self) -> None:
        async with self._db.transaction() as session:
            await session.execute(delete(RiskUsedNonce).where(RiskUsedNonce.expires_at < clock.now()))


@dataclass(frozen=True)
class Challenge:
    token: str
    bits: int
    expires_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "pow",
            "algorithm": "sha256",
            "token": self.token,
            "bits": self.bits,
            "expires_at": self.expires_at,
            "how": "find a decimal n such that sha256(token + ':' + n) begins with `bits` zero bits, then send"
            " the request again with token + ':' + n in the X-Risk-Solution header (risk_solution form field)",
        }


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


class ProofOfWork:
    def __init__(self, key: bytes, spent: SpentNonces, *, ttl_s: int) -> None:
        self._key = key
        self._spent = spent
        self._ttl_s = ttl_s

    def sign(self, payload: str) -> str:
        """The challenge's signature (also what `risk.captcha` signs and derives its answers with)."""
        mac = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    async def spend(self, nonce: str, *, until: int) -> bool:
        """Use a challenge's nonce up; False when it was used before."""
        return await self._spent.spend(nonce, until=until)

    def issue(self, action: str, bits: int) -> Challenge:
        expires = int(clock.now().timestamp()) + self._ttl_s
        payload = f"{VERSION}:{action}:{bits}:{expires}:{secrets.token_urlsafe(12)}"
        return Challenge(f"{payload}:{self.sign(payload)}", bits, expires)

    async def redeem(self, solution: str, *, action: str, bits: int) -> str | None:
        """Accept a solution once: None when it passes, else why not (a reason for the decision record)."""
        if len(solution) > MAX_SOLUTION:
            return "challenge_malformed"
        token, _, counter = solution.rpartition(":")
        parts = token.split(":")
        if len(parts) != 6 or parts[0] != VERSION or not counter.isdigit() or len(counter) > 20:
            return "challenge_malformed"
        _, solved_action, solved_bits, expires, nonce, signature = parts
        if not hmac.compare_digest(signature, self.sign(token.rpartition(":")[0])):
            return "challenge_forged"
        if solved_action != action:
            return "challenge_other_action"
        if int(expires) <= int(clock.now().timestamp()):
            return "challenge_expired"
        if int(solved_bits) < bits:
            return "challenge_too_easy"
        if leading_zero_bits(hashlib.sha256(solution.encode()).digest()) < int(solved_bits):
            return "challenge_unsolved"
        if not await self.spend(nonce, until=int(expires)):
            return "challenge_replayed"
        return None


def solve(challenge_token: str, bits: int) -> str:
    """A solution of a challenge, the way the shop's page finds one (tests and scripted clients)."""
    counter = 0
    while True:
        solution = f"{challenge_token}:{counter}"
        if leading_zero_bits(hashlib.sha256(solution.encode()).digest()) >= bits:
            return solution
        counter += 1
