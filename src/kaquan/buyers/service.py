"""Verifying a buyer's contact by a one-time code, and the token that proves it afterwards.

`start` sends a fresh 6-digit code (through the outbox: the worker delivers it by
e-mail, SMS webhook, or to the server log in dev mode) and replaces any earlier
one; it is throttled per contact (one a minute, five an hour) and per IP. `confirm`
checks a code: it lives 10 minutes and survives 5 wrong guesses, after which the
buyer must ask for a new one. `confirm` is a transaction boundary itself, like
`identity.login`: a wrong guess is counted while the request is refused.

Codes and contacts are stored only as keyed digests (models.py); the code travels
to the worker sealed (AES-GCM) in the outbox event.
"""

import base64
import json
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.buyers.contacts import Contact, normalize
from kaquan.buyers.errors import CodeExpired, CodeWrong, NoContactChannel, TooManyAttempts
from kaquan.buyers.models import ContactCode
from kaquan.buyers.tokens import BuyerToken, BuyerTokens
from kaquan.kit import clock, outbox
from kaquan.kit.config import Settings
from kaquan.kit.crypto import KeyRing, SecretBox, keyed_hash, same_digest
from kaquan.kit.db import Database, serialize_on
from kaquan.kit.errors import DomainError, RateLimited
from kaquan.kit.keys import named_key

CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
RESEND_AFTER = timedelta(seconds=60)
CODES_PER_CONTACT_PER_HOUR = 5
HOUR = timedelta(hours=1)
KEY_NAME = "buyers.verification"
SEND_TOPIC = "buyers.code"
Channel = Literal["email", "sms", "dev"]


def channel_for(kind: str, settings: Settings) -> Channel | None:
    """How a code reaches a contact of this kind, or None when nothing configured can deliver it."""
    if kind == "email" and settings.smtp_host:
        return "email"
    if kind == "phone" and settings.sms_webhook_url:
        return "sms"
    return "dev" if settings.dev_contact_codes else None


def any_channel(settings: Settings) -> bool:
    """Whether buyers can verify a contact at all (e-mail, SMS or dev codes configured)."""
    return any(channel_for(kind, settings) is not None for kind in ("email", "phone"))


@dataclass(frozen=True)
class Started:
    contact: str
    channel: Channel
    expires_at: datetime
    resend_after_s: int


class Verification:
    """Contact verification for one process: the keys derived from one named key, and the settings."""

    def __init__(self, key: bytes, settings: Settings) -> None:
        self.settings = settings
        self._contacts = keyed_hash(key, "contacts")
        self._codes = keyed_hash(key, "codes")
        self.box = SecretBox(keyed_hash(key, "sealing"))
        self.tokens = BuyerTokens(keyed_hash(key, "tokens"))

    @classmethod
    async def load(cls, db: Database, session: AsyncSession, keyring: KeyRing, settings: Settings) -> "Verification":
        return cls(await named_key(db, session, keyring, KEY_NAME), settings)

    def contact(self, text: str) -> Contact:
        return normalize(text, country_code=self.settings.phone_country_code)

    def _digest(self, contact: Contact) -> str:
        return keyed_hash(self._contacts, contact.value).hex()

    def _code_hash(self, digest: str, code: str) -> bytes:
        return keyed_hash(self._codes, f"{digest}\n{code}")

    def verified_contact(self, token: str | None) -> str | None:
        """The contact a buyer token proves, or None (no token, forged, expired)."""
        return self.tokens.open(token, now=clock.now()) if token else None

    async def start(self, db: Database, session: AsyncSession, contact_text: str, *, ip: str | None) -> Started:
        """Send a fresh code to a contact (replacing earlier ones), or refuse: throttled, or no way to send."""
        contact = self.contact(contact_text)
        channel = channel_for(contact.kind, self.settings)
        if channel is None:
            raise NoContactChannel(contact.kind)
        digest = self._digest(contact)
        now = clock.now()
        await serialize_on(session, f"buyers.contact:{digest}")
        await _throttle_contact(session, digest, now)
        if ip is not None:
            await serialize_on(session, f"buyers.ip:{ip}")
            await _throttle_ip(session, ip, now, self.settings.buyer_codes_per_ip_per_hour)
        await session.execute(
            update(ContactCode)
            .where(ContactCode.contact_digest == digest, ContactCode.used_at.is_(None))
            .values(used_at=now)
        )
        code = f"{secrets.randbelow(10**6):06d}"
        row = ContactCode(
            contact_digest=digest,
            channel=channel,
            ip=ip,
            code_hash=self._code_hash(digest, code),
            attempts=0,
            created_at=now,
            expires_at=now + CODE_TTL,
        )
        session.add(row)
        await session.flush()
        sealed = self.box.seal(json.dumps({"to": contact.value, "code": code}), sealed_for(row.id))
        await outbox.enqueue(
            session,
            SEND_TOPIC,
            {
                "id": row.id,
                "channel": channel,
                "expires_at": row.expires_at.isoformat(),
                "sealed": base64.b64encode(sealed).decode(),
            },
        )
        return Started(contact.value, channel, row.expires_at, int(RESEND_AFTER.total_seconds()))

    async def confirm(self, db: Database, contact_text: str, code: str) -> BuyerToken:
        """Check a code and issue a buyer token naming the contact; a transaction boundary (module doc)."""
        contact = self.contact(contact_text)
        async with db.transaction() as session:
            outcome = await self._check(db, session, contact, code.strip())
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def _check(
        self, db: Database, session: AsyncSession, contact: Contact, code: str
    ) -> BuyerToken | DomainError:
        digest = self._digest(contact)
        now = clock.now()
        stmt = (
            select(ContactCode)
            .where(ContactCode.contact_digest == digest, ContactCode.used_at.is_(None))
            .order_by(ContactCode.id.desc())
            .limit(1)
        )
        row = (await session.execute(db.lock(stmt))).scalar_one_or_none()
        if row is None or row.expires_at <= now:
            return CodeExpired()
        if row.attempts >= MAX_ATTEMPTS:
            return TooManyAttempts()
        if not same_digest(self._code_hash(digest, code), row.code_hash):
            row.attempts += 1
            return TooManyAttempts() if row.attempts >= MAX_ATTEMPTS else CodeWrong(MAX_ATTEMPTS - row.attempts)
        row.used_at = now
        return self.tokens.issue(contact.value, now=now, ttl=timedelta(hours=self.settings.buyer_token_hours))


def sealed_for(code_id: int) -> bytes:
    """What a sealed code is bound to: it opens only as the code of its own row."""
    return f"buyers.code:{code_id}".encode()


def _wait_s(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


async def _throttle_contact(session: AsyncSession, digest: str, now: datetime) -> None:
    stmt = select(func.max(ContactCode.created_at), func.min(ContactCode.created_at), func.count()).where(
        ContactCode.contact_digest == digest, ContactCode.created_at > now - HOUR
    )
    latest, oldest, count = (await session.execute(stmt)).one()
    if latest is not None and now - latest < RESEND_AFTER:
        wait = _wait_s(latest + RESEND_AFTER, now)
        raise RateLimited("a code was sent to this contact moments ago", retry_after=wait)
    if count >= CODES_PER_CONTACT_PER_HOUR:
        raise RateLimited("too many codes for this contact this hour", retry_after=_wait_s(oldest + HOUR, now))


async def _throttle_ip(session: AsyncSession, ip: str, now: datetime, per_hour: int) -> None:
    stmt = select(func.min(ContactCode.created_at), func.count()).where(
        ContactCode.ip == ip, ContactCode.created_at > now - HOUR
    )
    oldest, count = (await session.execute(stmt)).one()
    if count >= per_hour:
        raise RateLimited("too many codes asked for from this address", retry_after=_wait_s(oldest + HOUR, now))
