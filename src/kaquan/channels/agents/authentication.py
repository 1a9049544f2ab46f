"""Checking a signed open-API request: who sent it, and that it was sent once, recently, unchanged.

The checks run cheapest first and the nonce is spent last, after the signature
matched, so nobody can burn an agent's nonces with unsigned requests. Key
material is cached for a couple of seconds per process (a revocation takes
effect within that time everywhere).
"""

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Protocol

from sqlalchemy import delete

from kaquan.channels.agents import accounts, code_encryption, request_signing
from kaquan.channels.errors import (
    InvalidNonce,
    InvalidSignature,
    IpNotAllowed,
    KeyRevoked,
    MissingSignatureHeader,
    NonceReused,
    UnknownKey,
)
from kaquan.channels.models import Agent, SeenNonce
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing
from kaquan.kit.db import Database
from kaquan.kit.errors import Forbidden
from kaquan.kit.keyvalue import RedisClient

_CACHE_S = 2.0


class AgentSuspended(Forbidden):
    code = "agent_suspended"


@dataclass(frozen=True)
class AgentCaller:
    """The agent behind a verified request, and the secret that signed it (its codes are encrypted under it)."""

    agent: Agent
    key_id: str
    secret: str

    @cached_property
    def code_key(self) -> bytes:
        """The key its codes are encrypted under, derived once per request (not once per order of a batch)."""
        return code_encryption.code_key(self.secret, self.key_id)


class NonceStore(Protocol):
    async def first_use(self, key_id: str, nonce: str, ttl_s: int) -> bool: ...


class RedisNonces:
    """Nonces in Redis (`SET NX EX`): one answer across every process."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def first_use(self, key_id: str, nonce: str, ttl_s: int) -> bool:
        return bool(await self._redis.set(f"kq:nonce:{key_id}:{nonce}", b"1", nx=True, ex=ttl_s))


class DatabaseNonces:
    """Nonces in the database (no Redis): the primary key decides, expired ones are pruned as we go."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pruned_at = 0.0

    async def first_use(self, key_id: str, nonce: str, ttl_s: int) -> bool:
        now = clock.now()
        async with self._db.transaction() as session:
            if time.monotonic() - self._pruned_at > ttl_s:
                self._pruned_at = time.monotonic()
                await session.execute(delete(SeenNonce).where(SeenNonce.expires_at < now))
            inserted = await session.execute(
                self._db.insert(SeenNonce.__table__)  # type: ignore[arg-type]
                .values(key_id=key_id, nonce=nonce, expires_at=now + timedelta(seconds=ttl_s))
                .on_conflict_do_nothing(index_elements=["key_id", "nonce"])
            )
            return bool(inserted.rowcount)  # type: ignore[attr-defined]


class Authenticator:
    def __init__(self, db: Database, keyring: KeyRing, nonces: NonceStore, *, window_s: int) -> None:
        self._db = db
        self._keyring = keyring
        self._nonces = nonces
        self._window_s = window_s
        self._cache: dict[str, tuple[float, accounts.KeyMaterial | None]] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    def _cached(self, key_id: str) -> tuple[bool, accounts.KeyMaterial | None]:
        cached = self._cache.get(key_id)
        if cached is not None and time.monotonic() - cached[0] < _CACHE_S:
            return True, cached[1]
        return False, None

    async def _material(self, key_id: str) -> accounts.KeyMaterial | None:
        """The key's material, from the cache or the database; concurrent misses share one look-up."""
        hit, found = self._cached(key_id)
        if hit:
            return found
        async with self._loading.setdefault(key_id, asyncio.Lock()):
            hit, found = self._cached(key_id)
            if hit:
                return found
            async with self._db.transaction() as session:
                found = await accounts.key_material(self._db, session, self._keyring, key_id)
            if len(self._cache) > 10_000:
                self._cache.clear()
                self._loading.clear()
            self._cache[key_id] = (time.monotonic(), found)
            return found

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (after revoking or rotating it here)."""
        self._cache.pop(key_id, None)

    async def authenticate(
        self, *, method: str, path: str, raw_query: str, body: bytes, headers: Mapping[str, str], ip: str
    ) -> AgentCaller:
        key_id = headers.get(request_signing.KEY_HEADER.lower(), "")
        timestamp = headers.get(request_signing.TIMESTAMP_HEADER.lower(), "")
        nonce = headers.get(request_signing.NONCE_HEADER.lower(), "")
        offered = headers.get(request_signing.SIGNATURE_HEADER.lower(), "")
        missing = [
            name
            for name, value in (
                (request_signing.KEY_HEADER, key_id),
                (request_signing.TIMESTAMP_HEADER, timestamp),
                (request_signing.NONCE_HEADER, nonce),
                (request_signing.SIGNATURE_HEADER, offered),
            )
            if not value
        ]
        if missing:
            raise MissingSignatureHeader(missing)
        if not request_signing.NONCE_PATTERN.fullmatch(nonce):
            raise InvalidNonce()
        request_signing.refuse_ambiguous_query(raw_query)
        request_signing.check_timestamp(timestamp, clock.now(), self._window_s)
        material = await self._material(key_id) if len(key_id) <= 64 else None
        if material is None:
            raise UnknownKey()
        if material.revoked:
            raise KeyRevoked(key_id)
        if not accounts.ip_allowed(material.ip_allowlist, ip):
            raise IpNotAllowed(ip)
        canonical = request_signing.canonical_string(method, path, raw_query, body, timestamp, nonce)
        signers = material.secrets(clock.now())
        secret = next((s for s in signers if request_signing.signature_matches(s, canonical, offered)), None)
        if secret is None:
            raise InvalidSignature()
        if material.agent.status != "active":
            raise AgentSuspended("this agent is suspended; ask the merchant", agent=material.agent.code)
        if not await self._nonces.first_use(key_id, nonce, 2 * self._window_s):
            raise NonceReused()
        return AgentCaller(material.agent, key_id, secret)
