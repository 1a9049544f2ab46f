"""Record admin actions. Summaries must never hold a secret: callers pass masked values."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit.models import AuditEntry
from kaquan.kit import clock


async def record(
    session: AsyncSession,
    actor: str,
    action: str,
    *,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    session.add(
        AuditEntry(at=clock.now(), actor=actor, action=action, target=target, before=before, after=after, ip=ip)
    )


async def recent(session: AsyncSession, *, limit: int = 100) -> list[AuditEntry]:
    rows = await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return list(rows.scalars())
