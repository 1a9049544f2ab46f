"""Finance's worklist: the differences matching found, annotated and resolved by a person, every change audited.

A resolution says what is done about a difference:
- `accept_statement`: the statement's figure stands; the ledger is adjusted to it
  (fee differences move the fee and the receivable; anything else waits in the
  gateway's suspense account until it is placed);
- `write_off`: the difference is written off (`writeoff:gateway:<gateway>:<cur>`);
- `no_action`: nothing moves (a timing difference finance checked by hand, a
  difference fixed at its source), with a note saying why.
Resolving is idempotent: the same resolution again returns the item as it is
and posts nothing more; a different one is refused.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting
from kaquan.audit import service as audit
from kaquan.kit import clock
from kaquan.kit.db import Database, serialize_on
from kaquan.kit.errors import BadInput
from kaquan.reconciliation import parties
from kaquan.reconciliation.days import GATEWAY_SOURCES
from kaquan.reconciliation.errors import AlreadyResolved, DifferenceNotFound, NothingToResolve
from kaquan.reconciliation.matching import lock_name
from kaquan.reconciliation.models import CLASSES, STATES, Difference, StatementLineRow
from kaquan.reconciliation.pairing import PAID_HERE, REFUNDED_STATUSES, UNPAID_STATUSES

Resolution = Literal["accept_statement", "write_off", "no_action"]
RESOLUTIONS: tuple[str, ...] = get_args(Resolution)
OPEN_STATES = ("open", "annotated")
MAX_NOTE = 1000


@dataclass(frozen=True)
class DifferenceView:
    """One item of the worklist with the statement line it stands for, if any."""

    id: int
    source: str
    business_day: date
    class_: str
    state: str
    currency: str
    record_kind: str | None  # "payment" or "refund"
    record_ref: str | None  # payment token or refund number
    expected_minor: int | None  # kaquan's amount
    found_minor: int | None  # the statement's amount
    expected_fee_minor: int | None
    found_fee_minor: int | None
    expected_status: str | None  # kaquan's status of the record
    found_status: str | None  # the statement's status of the line
    line_kind: str | None
    line_id: int | None
    line_no: int | None
    line_identity: str | None
    line_merchant_ref: str | None
    line_counterparty_ref: str | None
    line_status: str | None
    line_occurred_at: datetime | None
    statement_id: int | None
    note: str
    resolution: str | None
    decided_by: str | None
    decided_at: datetime | None
    ledger_reference: str | None


def _view(item: Difference, line: StatementLineRow | None) -> DifferenceView:
    return DifferenceView(
        id=item.id,
        source=item.source,
        business_day=item.business_day,
        class_=item.class_,
        state=item.state,
        currency=item.currency,
        record_kind=item.record_kind,
        record_ref=item.record_ref,
        expected_minor=item.expected_minor,
        found_minor=item.found_minor,
        expected_fee_minor=item.expected_fee_minor,
        found_fee_minor=item.found_fee_minor,
        expected_status=item.expected_status,
        found_status=item.found_status,
        line_kind=item.line_kind,
        line_id=item.line_id,
        line_no=line.line_no if line else None,
        line_identity=line.identity if line else None,
        line_merchant_ref=line.merchant_ref if line else None,
        line_counterparty_ref=line.counterparty_ref if line else None,
        line_status=line.status if line else None,
        line_occurred_at=line.occurred_at if line else None,
        statement_id=line.statement_id if line else None,
        note=item.note,
        resolution=item.resolution,
        decided_by=item.decided_by,
        decided_at=item.decided_at,
        ledger_reference=item.ledger_reference,
    )


async def list_differences(
    session: AsyncSession,
    *,
    source: str | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
    classes: tuple[str, ...] | None = None,
    states: tuple[str, ...] | None = OPEN_STATES,
    after_id: int = 0,
    limit: int = 100,
) -> list[DifferenceView]:
    """Items by id (pages: pass the last id seen as `after_id`); by default the ones still waiting for finance."""
    for name in classes or ():
        if name not in CLASSES:
            raise BadInput(f"unknown class {name!r}", allowed=list(CLASSES))
    for name in states or ():
        if name not in STATES:
            raise BadInput(f"unknown state {name!r}", allowed=list(STATES))
    if not 1 <= limit <= 10_000:
        raise BadInput("limit is 1 to 10000", limit=limit)
    stmt = (
        select(Difference, StatementLineRow)
        .outerjoin(StatementLineRow, StatementLineRow.id == Difference.line_id)
        .where(Difference.id > after_id)
        .order_by(Difference.id)
        .limit(limit)
    )
    if source is not None:
        stmt = stmt.where(Difference.source == source)
    if first_day is not None:
        stmt = stmt.where(Difference.business_day >= first_day)
    if last_day is not None:
        stmt = stmt.where(Difference.business_day <= last_day)
    if classes:
        stmt = stmt.where(Difference.class_.in_(classes))
    if states:
        stmt = stmt.where(Difference.state.in_(states))
    return [_view(item, line) for item, line in (await session.execute(stmt)).all()]


async def get_difference(session: AsyncSession, item_id: int) -> DifferenceView:
    item, line = await _locked(None, session, item_id)
    return _view(item, line)


async def _locked(
    db: Database | None, session: AsyncSession, item_id: int
) -> tuple[Difference, StatementLineRow | None]:
    if db is not None:
        # Matching the item's source replaces its open items: wait for a run under way, and hold the next one
        # off until this change is committed (matching.lock_name).
        source = (await session.execute(select(Difference.source).where(Difference.id == item_id))).scalar()
        if source is not None:
            await serialize_on(session, lock_name(source))
    stmt = select(Difference).where(Difference.id == item_id).execution_options(populate_existing=True)
    found = (await session.execute(db.lock(stmt) if db else stmt)).scalar_one_or_none()
    if found is None:
        raise DifferenceNotFound(f"no reconciliation item {item_id}", id=item_id)
    line = await session.get(StatementLineRow, found.line_id) if found.line_id is not None else None
    return found, line


def _check_note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise BadInput(f"a note is at most {MAX_NOTE} characters", length=len(note))
    return note


async def annotate(db: Database, session: AsyncSession, item_id: int, *, note: str, actor: str) -> DifferenceView:
    """Attach a note to an item; an open item becomes `annotated` (re-matching keeps it and its note)."""
    note = _check_note(note)
    if not note:
        raise BadInput("a note says something")
    item, line = await _locked(db, session, item_id)
    before = {"state": item.state, "note": item.note}
    item.note = note
    if item.state in ("open", "auto"):
        item.state = "annotated"
    item.decided_by, item.decided_at = actor, clock.now()
    await audit.record(
        session,
        actor,
        "reconciliation.annotated",
        target=f"reconciliation_item:{item.id}",
        before=before,
        after={"state": item.state, "note": note},
    )
    return _view(item, line)


async def resolve(
    db: Database, session: AsyncSession, item_id: int, *, resolution: str, note: str, actor: str
) -> DifferenceView:
    """Resolve an item; `accept_statement` and `write_off` post the adjustment to the ledger, once."""
    if resolution not in RESOLUTIONS:
        raise BadInput(f"unknown resolution {resolution!r}", allowed=list(RESOLUTIONS))
    note = _check_note(note)
    item, line = await _locked(db, session, item_id)
    if item.state == "resolved":
        if item.resolution != resolution:
            raise AlreadyResolved(
                f"item {item.id} was resolved as {item.resolution}", id=item.id, resolution=item.resolution
            )
        return _view(item, line)
    if item.class_ in ("matched",):
        raise NothingToResolve(f"item {item.id} matched: nothing to resolve", id=item.id, class_=item.class_)
    before = {"state": item.state, "note": item.note}
    reference = None
    if resolution != "no_action" and item.source not in GATEWAY_SOURCES:
        reference = await parties.resolve_money(
            db,
            session,
            source=item.source,
            line_kind=item.line_kind,
            identity=line.identity if line else "",
            currency=item.currency,
            found_minor=item.found_minor,
            resolution=resolution,
            actor=actor,
        )
    elif resolution != "no_action":
        receivable, fee = adjustment_of(item)
        reference = await accounting.book_adjustment(
            db,
            session,
            gateway=item.source,
            currency=item.currency,
            reference=f"reconciliation:{item.id}",
            receivable_minor=receivable,
            fee_minor=fee,
            counter="suspense" if resolution == "accept_statement" else "writeoff",
            memo=f"{item.class_} {item.record_ref or (line.identity if line else '')} ({resolution})"[:200],
            actor=actor,
        )
    item.state, item.resolution, item.ledger_reference = "resolved", resolution, reference
    item.note = note or item.note
    item.decided_by, item.decided_at = actor, clock.now()
    await audit.record(
        session,
        actor,
        "reconciliation.resolved",
        target=f"reconciliation_item:{item.id}",
        before=before,
        after={"state": "resolved", "resolution": resolution, "note": item.note, "ledger_reference": reference},
    )
    return _view(item, line)


def adjustment_of(item: Difference | DifferenceView) -> tuple[int, int]:
    """(receivable, fee) moves that bring the ledger to the statement's figure (see accounting.adjusting).

    A payment's net (amount − fee) adds to what the gateway holds for us, a
    refund's net takes from it; a side that is missing counts as 0. The fee
    account moves by the fee the statement shows beyond the one booked (a
    refund's fee is given back, so its difference counts the other way).
    """
    expected, found = item.expected_minor or 0, item.found_minor or 0
    expected_fee, found_fee = item.expected_fee_minor or 0, item.found_fee_minor or 0
    if item.class_ == "status_mismatch":
        # Money counts only on the side that says it moved.
        if not _paid_here(item):
            expected, expected_fee = 0, 0
        if not _paid_there(item):
            found, found_fee = 0, 0
    receivable = (found - found_fee) - (expected - expected_fee)
    fee = found_fee - expected_fee
    if _is_refund(item):
        return -receivable, -fee
    return receivable, fee


def _is_refund(item: Difference | DifferenceView) -> bool:
    return (item.record_kind or item.line_kind) == "refund"


def _paid_here(item: Difference | DifferenceView) -> bool:
    if item.record_kind == "refund":
        return item.expected_status == "succeeded"
    return item.expected_status in PAID_HERE


def _paid_there(item: Difference | DifferenceView) -> bool:
    status = (item.found_status or "").upper()
    if item.line_kind == "refund":
        return status not in UNPAID_STATUSES
    return status not in UNPAID_STATUSES and status not in REFUNDED_STATUSES
