"""Allow and block lists: a subject on the block list is declined, one on the allow list approved,
before any rule runs (block wins when a request matches both). Every change is audited.

Entries are keyed like the decision's subjects: an address or prefix as written (normalized), a
device, contact or account as its digest. An operator may paste either the raw value (a contact, a
device token) or the 24-hex digest shown in recorded decisions.
"""

import re
from ipaddress import ip_address, ip_network

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.kit import clock
from kaquan.kit.errors import BadInput, Conflict
from kaquan.risk.errors import ListEntryNotFound
from kaquan.risk.features import digest
from kaquan.risk.models import LIST_KINDS, LIST_VERDICTS, RiskListEntry

_DIGEST = re.compile(r"^[0-9a-f]{24}$")


def normalize(kind: str, value: str) -> str:
    """The list key of `value` as a `kind`, e.g. `prefix` 10.1.2.3/24 → 10.1.2.0/24; BadInput if it is none."""
    value = value.strip()
    if kind not in LIST_KINDS:
        raise BadInput(f"a list entry's kind is one of {', '.join(LIST_KINDS)}", field="kind")
    if not 1 <= len(value) <= 200:
        raise BadInput("a list entry's value is 1 to 200 characters", field="value")
    try:
        if kind == "ip":
            return str(ip_address(value))
        if kind == "prefix":
            return str(ip_network(value, strict=False))
    except ValueError:
        raise BadInput(f"{value!r} is not an {'address' if kind == 'ip' else 'IP prefix'}", field="value") from None
    return value if _DIGEST.match(value) else digest(value)


def key_of(entry: RiskListEntry) -> str:
    return f"{entry.kind}:{entry.value}"


async def add(
    session: AsyncSession, kind: str, value: str, verdict: str, *, note: str = "", actor: str
) -> RiskListEntry:
    if verdict not in LIST_VERDICTS:
        raise BadInput("a list entry's verdict is allow or block", field="verdict")
    entry = RiskListEntry(
        kind=kind,
        value=normalize(kind, value),
        verdict=verdict,
        note=note.strip()[:200],
        created_by=actor[:120],
        created_at=clock.now(),
    )
    try:
        async with session.begin_nested():
            session.add(entry)
            await session.flush()
    except IntegrityError:
        raise Conflict(f"{kind} {entry.value} is on a list already; remove it first", kind=kind) from None
    after = {"kind": kind, "value": entry.value, "verdict": verdict, "note": entry.note}
    await audit.record(session, actor, "risk.list_added", target=f"risk_list:{key_of(entry)}", after=after)
    return entry


async def remove(session: AsyncSession, kind: str, value: str, *, actor: str) -> None:
    key = normalize(kind, value)
    where = (RiskListEntry.kind == kind, RiskListEntry.value == key)
    stmt = delete(RiskListEntry).where(*where).returning(RiskListEntry.verdict)
    verdict = (await session.execute(stmt)).scalar_one_or_none()
    if verdict is None:
        raise ListEntryNotFound(kind, key)
    before = {"kind": kind, "value": key, "verdict": verdict}
    await audit.record(session, actor, "risk.list_removed", target=f"risk_list:{kind}:{key}", before=before)


async def entries(session: AsyncSession) -> list[RiskListEntry]:
    return list((await session.execute(select(RiskListEntry).order_by(RiskListEntry.id))).scalars())


async def verdicts(session: AsyncSession) -> dict[str, str]:
    """Subject key → allow or block (the decision point reloads these every few seconds)."""
    return {key_of(entry): entry.verdict for entry in await entries(session)}
