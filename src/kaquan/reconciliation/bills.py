"""The worker's daily bill job: each gateway's bill of every past day fetched once it exists, imported, matched.

For every configured gateway whose adapter offers `download_bill(day)` and
whose format kaquan reads, the job keeps one row per (gateway, day) in
`reconciliation_bill_fetches`. A day's row (in the provider's time zone)
appears once the provider publishes its bill (`AVAILABLE_AFTER` past the
day's midnight), for yesterday and for every earlier day of the look-back
(`KAQUAN_BILL_LOOK_BACK_DAYS`, 7 by default) that has no row yet, back to
the gateway's first row (a gateway the job never ran for starts with
yesterday): a worker that was down for days catches up, oldest day first,
and a day is never scheduled twice (the unique (gateway, day) key). A due row is downloaded outside any transaction (a
network call), then imported and its day matched in one transaction. A
failure (the provider is down, the bill is not there yet, the file is
rejected) stays on the row with its code and message and is tried again
later, backing off, up to `MAX_ATTEMPTS`; then the row is `failed` until
finance asks for another try (`retry_fetch`). The console shows the rows.
"""

import io
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Protocol, runtime_checkable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.payments import registry
from kaquan.reconciliation.days import GATEWAY_SOURCES, business_day, day_start
from kaquan.reconciliation.errors import FetchNotFound
from kaquan.reconciliation.matching import match_period
from kaquan.reconciliation.models import BillFetch
from kaquan.reconciliation.sources import import_file

log = logging.getLogger(__name__)

ACTOR = "worker:bills"
# How long after the day ends (provider's midnight) its bill is published.
AVAILABLE_AFTER: dict[str, timedelta] = {
    "wechatpay": timedelta(hours=10),  # 次日10点后 (WeChat Pay's documented time)
    "alipay": timedelta(hours=9),  # 次日9点后
    "stripe": timedelta(hours=2),  # balance transactions settle into the day shortly after it ends
}
DEFAULT_LOOK_BACK_DAYS = 7
FIRST_RETRY = timedelta(minutes=30)
LONGEST_WAIT = timedelta(hours=6)
MAX_ATTEMPTS = 10


@runtime_checkable
class BillDownloading(Protocol):
    name: str

    async def download_bill(self, day: date) -> bytes: ...


@dataclass(frozen=True)
class BillFetchView:
    id: int
    gateway: str
    day: date
    state: str  # waiting, done, failed
    attempts: int
    next_at: datetime
    last_error: str
    statement_id: int | None
    lines_new: int | None
    differences: int | None
    updated_at: datetime


def _view(row: BillFetch) -> BillFetchView:
    return BillFetchView(
        row.id,
        row.gateway,
        row.day,
        row.state,
        row.attempts,
        row.next_at,
        row.last_error,
        row.statement_id,
        row.lines_new,
        row.differences,
        row.updated_at,
    )


def bill_gateways() -> list[BillDownloading]:
    """The configured gateways whose daily bill the job fetches."""
    return [
        gateway
        for gateway in registry.all()
        if isinstance(gateway, BillDownloading) and gateway.name in GATEWAY_SOURCES and gateway.name in AVAILABLE_AFTER
    ]


def wait_after(attempts: int) -> timedelta:
    """30 minutes after the first failure, doubling, never more than 6 hours."""
    doubled: timedelta = FIRST_RETRY * (1 << max(attempts - 1, 0))
    return min(doubled, LONGEST_WAIT)


async def fetch_due_bills(db: Database, *, limit: int = 5, look_back_days: int = DEFAULT_LOOK_BACK_DAYS) -> int:
    """One pass: the rows of the last `look_back_days` days put in place where due and missing, then up to
    `limit` due rows fetched, oldest first; returns those tried."""
    now = clock.now()
    gateways = {gateway.name: gateway for gateway in bill_gateways()}
    if not gateways:
        return 0
    await _schedule_missed_days(db, list(gateways), now, look_back_days)
    async with db.read() as session:
        due = (
            await session.execute(
                select(BillFetch.id, BillFetch.gateway, BillFetch.day)
                .where(BillFetch.state == "waiting", BillFetch.next_at <= now, BillFetch.gateway.in_(list(gateways)))
                .order_by(BillFetch.next_at, BillFetch.id)
                .limit(limit)
            )
        ).all()
    for fetch_id, name, day in due:
        await _fetch(db, gateways[name], fetch_id, day)
    return len(due)


def days_due(name: str, now: datetime, look_back_days: int) -> dict[date, datetime]:
    """The days of the look-back whose bill `name` has published by `now` (yesterday and up to
    `look_back_days - 1` days before it), each with the moment its bill came out."""
    yesterday = business_day(name, now) - timedelta(days=1)
    due: dict[date, datetime] = {}
    for back in range(max(look_back_days, 1)):
        day = yesterday - timedelta(days=back)
        ready_at = day_start(name, day + timedelta(days=1)) + AVAILABLE_AFTER[name]
        if now >= ready_at:
            due[day] = ready_at
    return due


async def _schedule_missed_days(db: Database, names: list[str], now: datetime, look_back_days: int) -> None:
    """A row for each published day of the look-back that has none, from the gateway's first day on (a gateway
    the job never ran for starts with its latest day); a read first, so a pass with nothing new writes nothing."""
    due = {name: days_due(name, now, look_back_days) for name in names}
    wanted_days = sorted({day for days in due.values() for day in days})
    if not wanted_days:
        return
    async with db.read() as session:
        first = dict(
            (
                await session.execute(
                    select(BillFetch.gateway, func.min(BillFetch.day))
                    .where(BillFetch.gateway.in_(sorted(names)))
                    .group_by(BillFetch.gateway)
                )
            ).all()
        )
        known = set(
            (
                await session.execute(
                    select(BillFetch.gateway, BillFetch.day).where(
                        BillFetch.gateway.in_(sorted(names)), BillFetch.day.in_(wanted_days)
                    )
                )
            ).all()
        )
    wanted: dict[tuple[str, date], datetime] = {}
    for name, days in due.items():
        start = first.get(name) or business_day(name, now) - timedelta(days=1)
        for day, ready_at in days.items():
            if day >= start and (name, day) not in known:
                wanted[(name, day)] = ready_at
    if wanted:
        await db.run(partial(_insert_rows, db, wanted=wanted, now=now))


async def _insert_rows(
    db: Database, session: AsyncSession, *, wanted: dict[tuple[str, date], datetime], now: datetime
) -> None:
    for (name, day), ready_at in wanted.items():
        await session.execute(
            db.insert(BillFetch.__table__)  # type: ignore[arg-type]
            .values(
                gateway=name,
                day=day,
                state="waiting",
                attempts=0,
                next_at=ready_at,
                last_error="",
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["gateway", "day"])
        )


async def _fetch(db: Database, gateway: BillDownloading, fetch_id: int, day: date) -> None:
    try:
        data = await gateway.download_bill(day)
    except DomainError as error:
        await db.run(partial(_failed, fetch_id=fetch_id, error=error))
        return
    try:
        async with db.transaction() as session:
            stored = await import_file(
                db,
                session,
                gateway.name,
                io.BytesIO(data),
                filename=f"{gateway.name}-{day.isoformat()}.csv",
                actor=ACTOR,
            )
            summary = await match_period(db, session, source=gateway.name, first_day=day, last_day=day)
            await session.execute(
                update(BillFetch)
                .where(BillFetch.id == fetch_id)
                .values(
                    state="done",
                    attempts=BillFetch.attempts + 1,
                    last_error="",
                    statement_id=stored.statement_id,
                    lines_new=stored.lines_new,
                    differences=summary.differences,
                    updated_at=clock.now(),
                )
            )
    except DomainError as error:  # a rejected file, another merchant's bill: nothing of it stays
        await db.run(partial(_failed, fetch_id=fetch_id, error=error))


async def _failed(session: AsyncSession, *, fetch_id: int, error: DomainError) -> None:
    row = await session.get(BillFetch, fetch_id)
    if row is None:
        return
    now = clock.now()
    row.attempts += 1
    row.last_error = f"{error.code}: {error.message}"[:500]
    row.state = "failed" if row.attempts >= MAX_ATTEMPTS else "waiting"
    row.next_at = now + wait_after(row.attempts)
    row.updated_at = now
    log.warning("the %s bill of %s: attempt %d failed (%s)", row.gateway, row.day, row.attempts, error.code)


async def list_fetches(session: AsyncSession, *, limit: int = 30) -> list[BillFetchView]:
    """The latest fetches, newest day first."""
    rows = await session.execute(select(BillFetch).order_by(BillFetch.day.desc(), BillFetch.gateway).limit(limit))
    return [_view(row) for row in rows.scalars()]


async def retry_fetch(db: Database, session: AsyncSession, fetch_id: int, *, actor: str) -> BillFetchView:
    """Try a waiting or failed fetch again on the worker's next pass (a done one stays done); audited."""
    stmt = select(BillFetch).where(BillFetch.id == fetch_id).execution_options(populate_existing=True)
    row = (await session.execute(db.lock(stmt))).scalar_one_or_none()
    if row is None:
        raise FetchNotFound(f"no bill fetch {fetch_id}", id=fetch_id)
    if row.state != "done":
        before = {"state": row.state, "attempts": row.attempts}
        row.state, row.attempts, row.next_at, row.updated_at = "waiting", 0, clock.now(), clock.now()
        await audit.record(
            session,
            actor,
            "reconciliation.bill_fetch_retried",
            target=f"reconciliation_bill_fetch:{row.id}",
            before=before,
            after={"state": row.state},
        )
    return _view(row)
