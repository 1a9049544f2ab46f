"""Record admin actions on a hash chain, and read, verify and export the chain.

Summaries must never hold a secret: callers pass masked values and counts.

Appends are serialized (an advisory lock on PostgreSQL; SQLite writers hold the
database's one write lock already), so each entry's id is the previous id + 1
and its `prev_hash` the previous entry's hash: concurrent writers can never fork
the chain. The lock is held from `record` to commit, so callers record last.
"""

import csv
import hashlib
import io
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit.models import AuditEntry as AuditEntry
from kaquan.audit.models import AuditHead
from kaquan.kit import clock
from kaquan.kit.db import serialize_on

GENESIS = "0" * 64
CHAIN_LOCK = "kaquan.audit.chain"
_HEAD_ID = 1
_DOMAIN = b"kaquan/audit/v1\n"
PAGE = 1000
CSV_COLUMNS = ("id", "at", "actor", "action", "target", "before", "after", "ip", "prev_hash", "hash")


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _normalized(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """The summary exactly as the database will hand it back (tuples as lists, keys as strings)."""
    return None if summary is None else json.loads(_canonical_json(summary))


def _time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    entry_id: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    ip: str | None,
) -> str:
    """SHA-256 over a canonical JSON array of the entry's fields and the previous entry's hash."""
    fields = [prev_hash, entry_id, _time(at), actor, action, target, before, after, ip]
    return hashlib.sha256(_DOMAIN + _canonical_json(fields).encode()).hexdigest()


def hash_of(entry: AuditEntry) -> str:
    return entry_hash(
        entry.prev_hash,
        entry.id,
        entry.at,
        entry.actor,
        entry.action,
        entry.target,
        entry.before,
        entry.after,
        entry.ip,
    )


async def record(
    session: AsyncSession,
    actor: str,
    action: str,
    *,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append one entry to the chain, in the caller's transaction."""
    await serialize_on(session, CHAIN_LOCK)
    head = (
        await session.execute(
            select(AuditHead).where(AuditHead.id == _HEAD_ID).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    entry = AuditEntry(
        id=head.last_id + 1 if head else 1,
        at=clock.now(),
        actor=actor,
        action=action,
        target=target,
        before=_normalized(before),
        after=_normalized(after),
        ip=ip,
        prev_hash=head.last_hash if head else GENESIS,
    )
    entry.hash = hash_of(entry)
    session.add(entry)
    if head is None:
        session.add(AuditHead(id=_HEAD_ID, last_id=entry.id, last_hash=entry.hash))
    else:
        head.last_id, head.last_hash = entry.id, entry.hash
    await session.flush()
    return entry


async def recent(session: AsyncSession, *, limit: int = 100) -> list[AuditEntry]:
    rows = await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return list(rows.scalars())


# Reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to read. `target` ending in `*` matches as a prefix (`batch:*`)."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, stmt: Select[AuditEntry]) -> Select[AuditEntry]:
        if self.actor:
            stmt = stmt.where(AuditEntry.actor == self.actor)
        if self.action:
            stmt = stmt.where(AuditEntry.action == self.action)
        if self.target:
            if self.target.endswith("*"):
                stmt = stmt.where(AuditEntry.target.startswith(self.target[:-1], autoescape=True))
            else:
                stmt = stmt.where(AuditEntry.target == self.target)
        if self.since:
            stmt = stmt.where(AuditEntry.at >= self.since)
        if self.until:
            stmt = stmt.where(AuditEntry.at < self.until)
        return stmt


async def search(
    session: AsyncSession, where: AuditFilter, *, before_id: int | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Matching entries, newest first; pass the last id seen as `before_id` for the next page."""
    stmt = where.apply(select(AuditEntry))
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    rows = await session.execute(stmt.order_by(AuditEntry.id.desc()).limit(limit))
    return list(rows.scalars())


async def count(session: AsyncSession, where: AuditFilter | None = None) -> int:
    stmt = (where or AuditFilter()).apply(select(AuditEntry))
    return int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())


async def entries(session: AsyncSession, where: AuditFilter | None = None) -> AsyncIterator[AuditEntry]:
    """Every matching entry, oldest first, read a page at a time."""
    last = 0
    stmt = (where or AuditFilter()).apply(select(AuditEntry))
    while True:
        rows = await session.execute(stmt.where(AuditEntry.id > last).order_by(AuditEntry.id).limit(PAGE))
        page = list(rows.scalars())
        if not page:
            return
        for entry in page:
            yield entry
        last = page[-1].id
        session.expunge_all()


def _spreadsheet_safe(text: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet: a classic CSV injection.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(entry: AuditEntry) -> list[str]:
    summary = [_canonical_json(s) if s is not None else "" for s in (entry.before, entry.after)]
    cells = [str(entry.id), _time(entry.at), entry.actor, entry.action, entry.target, *summary, entry.ip or ""]
    return [_spreadsheet_safe(cell) for cell in cells] + [entry.prev_hash, entry.hash]


def csv_lines(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


# Verifying -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of walking the chain: either whole, or the first entry where it breaks and why."""

    checked: int
    head_hash: str
    bad_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.bad_id is None


async def verify(session: AsyncSession, *, progress: Callable[[int], None] | None = None) -> ChainCheck:
    """Walk the whole chain in id order and recompute every hash.

    Entries appended while the walk runs are taken in: the head is read after the
    entries, and an entry and its head update commit together.
    """
    prev_id, prev_hash, checked = 0, GENESIS, 0
    while True:
        rows = await session.execute(
            select(AuditEntry).where(AuditEntry.id > prev_id).order_by(AuditEntry.id).limit(PAGE)
        )
        page = list(rows.scalars())
        if not page:
            head = (await session.execute(select(AuditHead).where(AuditHead.id == _HEAD_ID))).scalar_one_or_none()
            head_id, head_hash = (head.last_id, head.last_hash) if head else (0, GENESIS)
            if head_id > prev_id:
                more = await session.execute(select(func.count()).where(AuditEntry.id > prev_id))
                if more.scalar_one():
                    continue  # appended after our last page: walk them too
                return ChainCheck(
                    checked,
                    prev_hash,
                    prev_id + 1,
                    f"entries {prev_id + 1} to {head_id} are missing: the chain head says the last entry is "
                    f"{head_id} (entries were deleted from the end)",
                )
            if head_id < prev_id:
                return ChainCheck(
                    checked,
                    prev_hash,
                    head_id + 1,
                    f"entry {head_id + 1} comes after the chain head (last entry {head_id}): inserted",
                )
            if head_hash != prev_hash:
                return ChainCheck(checked, prev_hash, prev_id, "the chain head does not match the last entry's hash")
            return ChainCheck(checked, prev_hash)
        for entry in page:
            bad = _break_at(entry, prev_id, prev_hash)
            if bad is not None:
                return ChainCheck(checked, prev_hash, entry.id, bad)
            prev_id, prev_hash = entry.id, entry.hash
            checked += 1
        session.expunge_all()
        if progress is not None:
            progress(len(page))


def _break_at(entry: AuditEntry, prev_id: int, prev_hash: str) -> str | None:
    if entry.id != prev_id + 1:
        missing = f"entry {prev_id + 1}" if entry.id == prev_id + 2 else f"entries {prev_id + 1} to {entry.id - 1}"
        return f"{missing} before it are missing (deleted)"
    if entry.prev_hash != prev_hash:
        what = f"entry {prev_id}" if prev_id else "the start of the chain"
        return f"it does not follow {what}: an entry before it was changed, inserted or reordered"
    if hash_of(entry) != entry.hash:
        return "its content does not match its hash: it was edited"
    return None
