"""Matching a gateway's statement lines with kaquan's payments and refunds, one period at a time, in SQL.

The period's lines (plus a day either side, where a payment made just before
midnight shows up) and payments' records of the same days are copied into two
scratch tables. Pairs are found in passes, each an INSERT … SELECT that takes
only lines and records still unpaired:
1. payment lines by merchant reference (the payment token = out_trade_no);
2. refund lines by kaquan's refund number (out_refund_no / out_request_no);
then, over what is left (copied once to two small tables):
3. payment lines by the provider's transaction id;
4. refund lines by the provider's refund id;
5. payment lines left over, by amount, currency and business day: the k-th
   such line of an amount on a day with the k-th unpaired payment of that
   amount on that day, both in time order.
Every pair, every unpaired line and every unpaired record with a business day
in the period then ends in exactly one class (docs/reconciliation.md): a pair
that agrees as one compact row of `reconciliation_matches`, anything else as
one item of the worklist. Each pass notes whether the pair it makes agrees, so
the million pairs that do are written without being joined again with their
line and record. Items finance annotated or resolved are left out of all of
this and kept as they are; the period's other items and matches are replaced.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock
from kaquan.kit.db import Database, serialize_on
from kaquan.kit.models import UTCDateTime
from kaquan.kit.set_work import (
    allow_large_sorts,
    drop_scratch_table,
    index_scratch_table,
    refresh_statistics,
    scratch_table,
    summarize_block_ranges,
    without_compiling,
)
from kaquan.reconciliation import pairing, parties, plain_matches, runs
from kaquan.reconciliation.days import day_of, day_start, days, zone_of
from kaquan.reconciliation.errors import BadPeriod
from kaquan.reconciliation.models import CLASSES, ITEMS, LINES, MATCHES, RUNS, STATEMENTS, Difference
from kaquan.reconciliation.scratch_tables import line_columns, pair_columns, record_columns

# A payment this close to midnight may be in the next day's bill: not missing while that day is not in.
TIMING_WINDOW = timedelta(minutes=10)
KEPT_STATES = ("annotated", "resolved")
WORK_MEMORY_MB = 128  # a million lines sort and hash in memory


@dataclass(frozen=True)
class MatchSummary:
    """How many items of each class the period holds after matching (annotated and resolved ones included)."""

    source: str
    first_day: date
    last_day: date
    counts: dict[str, int]

    @property
    def differences(self) -> int:
        return sum(n for name, n in self.counts.items() if name not in ("matched", "timing"))


async def match_period(
    db: Database, session: AsyncSession, *, source: str, first_day: date, last_day: date
) -> MatchSummary:
    """Match `source`'s lines of business days [first_day, last_day] with kaquan's records; returns the counts."""
    parties.check_matchable(source)
    if last_day < first_day:
        raise BadPeriod("the period ends before it starts", first_day=str(first_day), last_day=str(last_day))
    await serialize_on(session, lock_name(source))
    await allow_large_sorts(session, WORK_MEMORY_MB)
    await without_compiling(session)
    found = await parties.records_of(
        session, source, day_start(source, first_day - timedelta(1)), day_start(source, last_day + timedelta(2))
    )
    run = _Run(db, session, source, first_day, last_day, found)
    await run.stage()
    await run.pair()
    await run.replace_items()
    await run.drop()
    await refresh_statistics(session, ITEMS)
    await summarize_block_ranges(session, MATCHES)
    return MatchSummary(source, first_day, last_day, await counts(session, source, first_day, last_day))


def lock_name(source: str) -> str:
    """What matching a source, and annotating or resolving its items, serialize on.

    A record's item is unique because matching replaces every item of the records it places: two runs at
    once, or a note added between a run's reading of the kept items and its writing, would leave two."""
    return f"reconciliation:{source}"


async def counts(session: AsyncSession, source: str, first_day: date, last_day: date) -> dict[str, int]:
    """How many items of each class the days hold, the compact matched pairs counted as `matched`."""
    found = await session.execute(
        select(Difference.class_, func.count())
        .where(Difference.source == source, Difference.business_day.between(first_day, last_day))
        .group_by(Difference.class_)
    )
    by_class = {name: 0 for name in CLASSES}
    by_class.update({name: int(n) for name, n in found.all()})
    m, r = MATCHES.c, RUNS.c
    matched = select(func.count()).where(m.source == source, m.business_day.between(first_day, last_day))
    in_runs = select(func.coalesce(func.sum(r.lines), 0)).where(
        r.source == source, r.business_day.between(first_day, last_day)
    )
    by_class["matched"] += int((await session.execute(matched)).scalar_one())
    by_class["matched"] += int((await session.execute(in_runs)).scalar_one())
    return by_class


class _Run:
    def __init__(
        self, db: Database, session: AsyncSession, source: str, first_day: date, last_day: date, found: Any
    ) -> None:
        self.db, self.session, self.source, self.found = db, session, source, found
        self.party, self.marketplace = parties.is_party(source), parties.is_marketplace(source)
        self.plain: plain_matches.Split | None = None  # a gateway's: its plain matches, found before staging
        self.first, self.last = first_day, last_day
        self.wide_first, self.wide_last = first_day - timedelta(days=1), last_day + timedelta(days=1)
        # [scope_start, scope_end]: the instants of the period's days (BETWEEN is inclusive: end minus a microsecond)
        self.scope_start = day_start(source, first_day)
        self.scope_end = day_start(source, last_day + timedelta(days=1)) - timedelta(microseconds=1)

    async def _exec(self, stmt: Any) -> None:
        await self.session.execute(stmt)

    async def stage(self) -> None:
        items = ITEMS.c
        kept = select(items.id).where(items.source == self.source, items.state.in_(KEPT_STATES)).limit(1)
        # Most periods have nothing kept: then no line or record is looked up among the items at all.
        self.any_kept = (await self.session.execute(kept)).first() is not None
        self.lines = await scratch_table(self.session, "reconciliation_match_lines", *line_columns())
        self.records = await scratch_table(self.session, "reconciliation_match_records", *record_columns())
        self.pairs = await scratch_table(
            self.session,
            "reconciliation_match_pairs",
            Column("line_id", BigInteger, nullable=False),
            *pair_columns(),
        )
        self.window_payments: Table | None = None
        if not self.party:
            await self._split_off_plain_matches()
        await self._stage_lines()
        if self.marketplace:
            await parties.fold_commissions(self.session, self.lines)
        await self._stage_records()
        await index_scratch_table(self.session, self.lines, "ix_reconciliation_match_lines_id", "id")
        await index_scratch_table(self.session, self.records, "ix_reconciliation_match_records_ref", "kind", "ref")
        for table in (self.lines, self.records):
            await refresh_statistics(self.session, table)

    def _kept_line(self) -> Any:
        """A line of the lines table finance annotated or resolved: matching leaves it (and its item) alone."""
        items = ITEMS.c
        return exists().where(items.line_id == LINES.c.id, items.state.in_(KEPT_STATES))

    def _kept_record(self, kind: Any, ref: Any) -> Any:
        """A record (`kind`, `ref`) finance annotated or resolved the item of."""
        items = ITEMS.c
        return exists().where(
            items.source == self.source,
            items.business_day.between(self.wide_first, self.wide_last),  # a record's item has the record's day
            items.record_kind == kind,
            items.record_ref == ref,
            items.state.in_(KEPT_STATES),
        )

    async def _split_off_plain_matches(self) -> None:
        """Find the plain matches of a gateway's period at once (`plain_matches`); stage only the rest."""
        found = self.found.subquery()
        day = day_of(self.source, found.c.at, self.wide_first, self.wide_last)
        chosen = select(
            found.c.kind,
            found.c.ref,
            found.c.amount_minor,
            found.c.fee_minor,
            found.c.currency,
            found.c.status,
            day.label("day"),
        ).where(found.c.kind == "payment")
        if self.any_kept:
            chosen = chosen.where(~self._kept_record(found.c.kind, found.c.ref))
        payments: Any = chosen.subquery("window_payments")
        if not self.db.joins_by_hashing:  # SQLite joins by looking up an index: the payments get one
            self.window_payments = payments = await scratch_table(
                self.session,
                "reconciliation_match_window_payments",
                *(c for c in record_columns() if c.name in chosen.selected_columns),
            )
            await self._exec(insert(payments).from_select(list(chosen.selected_columns.keys()), chosen))
            await index_scratch_table(self.session, payments, "ix_reconciliation_match_window_payments_ref", "ref")
        scope = plain_matches.Scope(self.source, self.wide_first, self.wide_last, self.first, self.last)
        self.plain = plain = await plain_matches.split(
            self.db,
            self.session,
            scope,
            payments,
            kept_line=self._kept_line() if self.any_kept else None,
        )
        if plain is None:  # too many lines to hold: the passes take them all
            return
        self.line_ids = await scratch_table(
            self.session, "reconciliation_match_line_ids", Column("id", BigInteger, primary_key=True)
        )
        self.payment_refs = await scratch_table(
            self.session, "reconciliation_match_payment_refs", Column("ref", String(128), primary_key=True)
        )
        await self.db.copy_rows(self.session, self.line_ids, ["id"], [(n,) for n in plain.lines_to_stage])
        await self.db.copy_rows(self.session, self.payment_refs, ["ref"], [(r,) for r in plain.payments_to_stage])
        for table in (self.line_ids, self.payment_refs):
            await refresh_statistics(self.session, table)

    async def _stage_lines(self) -> None:
        stored = LINES.c
        in_scope = case((stored.business_day.between(self.first, self.last), 1), else_=0)
        names = [c.name for c in self.lines.c if c.name != "in_scope"]
        chosen = select(*(stored[name] for name in names), in_scope).where(
            stored.source == self.source, stored.business_day.between(self.wide_first, self.wide_last)
        )
        if self.plain is not None:
            chosen = chosen.where(stored.id.in_(select(self.line_ids.c.id)))
        if self.any_kept:
            chosen = chosen.where(~self._kept_line())
        await self._exec(insert(self.lines).from_select([*names, "in_scope"], chosen))

    async def _stage_records(self) -> None:
        found = self.found.subquery()
        kept = self._kept_record(found.c.kind, found.c.ref)
        counted = case(
            (and_(found.c.kind == "payment", found.c.status.in_(pairing.PAID_HERE)), 1),
            (and_(found.c.kind == "refund", found.c.status == "succeeded"), 1),
            else_=0,
        )
        covered = await self._covered_days()
        day = day_of(self.source, found.c.at, self.wide_first, self.wide_last)
        in_scope = case((found.c.at.between(self.scope_start, self.scope_end), 1), else_=0)
        # Just before a midnight whose next day no statement covers yet: the line may still come with that day.
        late = [
            and_(found.c.at >= end - TIMING_WINDOW, found.c.at < end)
            for end in (day_start(self.source, d + timedelta(1)) for d in days(self.wide_first, self.wide_last))
            if end.astimezone(zone_of(self.source)).date() not in covered
        ]
        waiting = case((or_(*late), 1), else_=0) if late else literal(0)
        chosen = select(
            found.c.kind,
            found.c.ref,
            found.c.txn_id,
            found.c.amount_minor,
            found.c.fee_minor,
            found.c.currency,
            found.c.status,
            found.c.at,
            day,
            counted,
            in_scope,
            waiting,
        )
        if self.any_kept:
            chosen = chosen.where(~kept)
        staged: Any = chosen
        if self.plain is not None:  # every refund, and the payments that are not plain (each found by its key)
            staged = union_all(
                chosen.where(found.c.kind != "payment"),
                chosen.where(found.c.kind == "payment", found.c.ref.in_(select(self.payment_refs.c.ref))),
            )
        names = ["kind", "ref", "txn_id", "amount_minor", "fee_minor", "currency", "status", "at", "day", "counts"]
        await self._exec(insert(self.records).from_select([*names, "in_scope", "waiting"], staged))

    async def _covered_days(self) -> set[date]:
        """The days some imported statement of the source covers (by its period, or by a line on that day)."""
        s, stored = STATEMENTS.c, LINES.c
        wanted = days(self.wide_first, self.wide_last + timedelta(1))
        periods = await self.session.execute(
            select(s.period_start, s.period_end).where(
                s.source == self.source,
                s.period_start.is_not(None),
                s.period_start <= wanted[-1],
                s.period_end >= wanted[0],
            )
        )
        covered = {day for start, end in periods.all() for day in wanted if start <= day <= end}
        for day in wanted:
            if day not in covered:
                on_day = exists().where(stored.source == self.source, stored.business_day == day)
                if (await self.session.execute(select(on_day))).scalar_one():
                    covered.add(day)
        return covered

    async def pair(self) -> None:
        """Pair by kaquan's references over everything, then by the provider's ids and by amount over what is
        left: copied to two small tables once, instead of every pass looking past a million pairs. They are
        kept for the items: what stays unpaired is what they hold less what the later passes paired.

        A store's or agent's refund line names the order it gives back by the order's key; their lines are
        never paired by amount (each names its order: pairing two strangers of one amount would hide both)."""
        await self._pair_by_reference(
            self.pairs, self.lines, self.records, "merchant_ref", "ref", kind="payment", first_of_kind=True
        )
        # Indexed once filled by the big pass (one sort), before anything looks a line or a record up in it.
        # PostgreSQL looks the records up by hash joins only: there an index on them cost 2 s and served no plan.
        await index_scratch_table(self.session, self.pairs, "ix_reconciliation_match_pairs_line", "line_id")
        if not self.db.joins_by_hashing:
            await index_scratch_table(
                self.session, self.pairs, "ix_reconciliation_match_pairs_record", "record_kind", "record_ref"
            )
        await self._pair_by_reference(
            self.pairs, self.lines, self.records, "refund_ref", "ref", kind="refund", first_of_kind=True
        )
        if self.party:
            await self._pair_by_reference(self.pairs, self.lines, self.records, "merchant_ref", "ref", kind="refund")
        await refresh_statistics(self.session, self.pairs)
        self.left_lines = lines = await self._leftover(self.lines, "reconciliation_match_left_lines", line_columns())
        self.left_records = records = await self._leftover(
            self.records, "reconciliation_match_left_records", record_columns()
        )
        self.left_pairs = found = await scratch_table(
            self.session,
            "reconciliation_match_left_pairs",
            Column("line_id", BigInteger, primary_key=True, autoincrement=False),
            *pair_columns(Index("ix_reconciliation_match_left_pairs_record", "record_kind", "record_ref")),
        )
        await self._pair_by_reference(found, lines, records, "counterparty_ref", "txn_id", kind="payment")
        await self._pair_by_reference(found, lines, records, "counterparty_ref", "txn_id", kind="refund")
        if not self.party:
            await self._exec(insert(found).from_select(pairing.PAIR_NAMES, pairing.by_amount(found, lines, records)))
        names = list(self.pairs.c.keys())
        await self._exec(insert(self.pairs).from_select(names, select(*(found.c[n] for n in names))))
        await refresh_statistics(self.session, self.pairs)

    async def _leftover(self, table: Table, name: str, columns: list[Column[Any]]) -> Table:
        left = await scratch_table(self.session, name, *columns)
        is_lines = "occurrence" in table.c
        unpaired = pairing.unpaired_line(self.pairs, table) if is_lines else pairing.unpaired_record(self.pairs, table)
        await self._exec(insert(left).from_select(list(table.c.keys()), select(table).where(unpaired)))
        return left

    async def _pair_by_reference(
        self,
        pairs: Table,
        lines: Table,
        records: Table,
        line_ref: str,
        record_ref: str,
        *,
        kind: str,
        first_of_kind: bool = False,
    ) -> None:
        """Pair lines of `kind` with records of `kind` not in `pairs` yet where the line's `line_ref` is the
        record's `record_ref`: each record with its first such line. kaquan's references are unique (a line
        meets one record at most), so the big passes add plain rows; the provider's ids may not be, so the
        passes over the leftovers go to a table whose key keeps the first pair of a line.

        A pair agrees when its record met one line only and the two agree: its line is then known without
        joining again (with several lines, the first is taken and classed later with the differences).

        The first big pass of a kind (`first_of_kind`) finds no line or record of its kind paired yet, so it
        looks none up among the pairs. Nearly every reference there is on one line only: those lines are
        paired without grouping (one row per line), and only the lines that share a reference are grouped."""
        lc, rc = lines.c, records.c
        condition = pairing.by_reference(lines, records, line_ref, record_ref, kind)
        in_scope = lc.in_scope + rc.in_scope > 0
        names = pairing.PAIR_NAMES
        if not first_of_kind:
            unpaired = (pairing.unpaired_line(pairs, lines), pairing.unpaired_record(pairs, records))
            stmt = self.db.insert(pairs).from_select(
                names, pairing.first_lines(lines, records, condition, in_scope, *unpaired)
            )
            await self._exec(stmt if pairs is self.pairs else stmt.on_conflict_do_nothing())
            return
        shared = await self._shared_references(lines, line_ref, kind)
        alone = pairing.row_per_line(lines, records, condition, in_scope, lc[line_ref].not_in(select(shared.c.ref)))
        await self._exec(insert(pairs).from_select(names, alone))
        together = pairing.first_lines(lines, records, condition, in_scope, lc[line_ref].in_(select(shared.c.ref)))
        await self._exec(insert(pairs).from_select(names, together))
        await drop_scratch_table(self.session, shared)

    async def _shared_references(self, lines: Table, line_ref: str, kind: str) -> Table:
        """The references (`line_ref`) more than one line of `kind` gives, in a scratch table of their own."""
        shared = await scratch_table(
            self.session, "reconciliation_match_shared_refs", Column("ref", String(128), nullable=False)
        )
        await self._exec(insert(shared).from_select(["ref"], pairing.shared_references(lines, line_ref, kind)))
        return shared

    async def replace_items(self) -> None:
        await self._delete_replaced()
        if self.plain is not None:
            await runs.replace(self.db, self.session, self.source, self.first, self.last, self.plain.runs)
        now = clock.now()
        await self._insert_pairs(now)
        await self._insert_lone_lines(now)
        await self._insert_lone_records(now)
        if self.marketplace:
            await parties.insert_commission_items(self.session, self.source, self.lines, self.pairs, now)
            await parties.settle_payouts(self.db, self.session, self.source, self.lines, now)

    async def _delete_replaced(self) -> None:
        """Delete the open and auto items, and the matches, of the lines and records this run places again.

        Two statements a table: an OR of the two made PostgreSQL scan every item of the source, a cost that
        grows with the history kept rather than with the period. A line's row is found by its key, within the
        range of the staged lines' ids (else PostgreSQL read every match of the source, to delete none of a
        fresh import's); a record's has the record's business day, within the days staged, so the day index
        narrows it down."""
        lc, rc, p = self.lines.c, self.records.c, self.pairs.c
        lowest, highest = (await self.session.execute(select(func.min(lc.id), func.max(lc.id)))).one()
        lines = select(lc.id).where(or_(lc.in_scope == 1, exists().where(p.line_id == lc.id)))
        records = select(rc.kind, rc.ref).where(
            or_(rc.in_scope == 1, exists().where(p.record_kind == rc.kind, p.record_ref == rc.ref))
        )
        items, matches = ITEMS.c, MATCHES.c
        for table, of_source in (
            (ITEMS, (items.source == self.source, items.state.in_(("open", "auto")))),
            (MATCHES, (matches.source == self.source,)),
        ):
            t = table.c
            if lowest is not None:
                await self._exec(
                    delete(table).where(*of_source, t.line_id.between(lowest, highest), t.line_id.in_(lines))
                )
            staged_days = t.business_day.between(self.wide_first, self.wide_last)
            # A new day has no rows yet: one probe of the day index spares hashing every staged record.
            if (await self.session.execute(select(exists().where(*of_source, staged_days)))).scalar_one():
                await self._exec(
                    delete(table).where(*of_source, staged_days, tuple_(t.record_kind, t.record_ref).in_(records))
                )

    async def _insert_pairs(self, now: Any) -> None:
        """The pairs that agree go to the matches as they are; the others are joined with their line and record
        again and classed: differences become items, the few that agree after all (a record that met several
        lines, a pair by amount) matches.

        A marketplace store's pairs all stay items: its payouts are checked against kaquan's net of the
        export's paired orders (`parties.settle_payouts`), which their items carry."""
        lc, rc, p = self.lines.c, self.records.c, self.pairs.c
        klass = pairing.pair_class(self.lines, self.records)
        joined = self.pairs.join(self.lines, lc.id == p.line_id).join(
            self.records, and_(rc.kind == p.record_kind, rc.ref == p.record_ref)
        )
        differing: Any = true()
        if not self.marketplace:
            names = ["line_id", "record_kind", "record_ref", "business_day", "source"]
            pair = (p.line_id, p.record_kind, p.record_ref, p.day, literal(self.source))
            # In the lines' order: the key then grows at its right edge (in the hash join's order, a million
            # items took 22 s against 4.6 s to insert on PostgreSQL).
            agreeing = select(*pair).where(p.agrees == 1).order_by(p.line_id)
            await self._exec(insert(MATCHES).from_select(names, agreeing))
            late = select(*pair).select_from(joined).where(p.agrees == 0, klass == "matched")
            await self._exec(insert(MATCHES).from_select(names, late))
            differing = and_(p.agrees == 0, klass != "matched")
        chosen = (
            select(
                literal(self.source),
                p.day,
                klass,
                lc.id,
                rc.kind,
                rc.ref,
                rc.currency,
                rc.amount_minor,
                lc.amount_minor,
                rc.fee_minor,
                lc.fee_minor,
                rc.status,
                lc.status,
                lc.kind,
                case((klass == "matched", "auto"), else_="open"),
                literal(""),
                literal(now, UTCDateTime()),
            )
            .select_from(joined)
            .where(differing)
            .order_by(lc.id)
        )
        await self._insert_items(chosen, with_line=True, with_record=True)

    async def _insert_lone_lines(self, now: Any) -> None:
        """The lines no pass paired: among the leftovers, those the later passes left alone. Looking for them
        among all the period's lines took an anti-join of a million lines with a million pairs."""
        lc = self.left_lines.c
        klass = case(
            (lc.occurrence > 0, "duplicate_line"),
            (lc.kind == "refund", "refund_missing_in_kaquan"),
            else_="missing_in_kaquan",
        )
        chosen = select(
            literal(self.source),
            lc.business_day,
            klass,
            lc.id,
            lc.currency,
            lc.amount_minor,
            lc.fee_minor,
            lc.status,
            lc.kind,
            literal("open"),
            literal(""),
            literal(now, UTCDateTime()),
        ).where(lc.in_scope == 1, pairing.unpaired_line(self.left_pairs, self.left_lines))
        if self.marketplace:  # commissions and payouts are classed on their own (parties)
            chosen = chosen.where(lc.kind.not_in(("fee", "payout")))
        await self._insert_items(chosen, with_line=True, with_record=False)

    async def _insert_lone_records(self, now: Any) -> None:
        """The records no pass paired, found among the leftovers as the lines are."""
        rc = self.left_records.c
        klass = case(
            (rc.waiting == 1, "timing"),
            (rc.kind == "refund", "refund_missing_in_statement"),
            else_="missing_in_statement",
        )
        chosen = select(
            literal(self.source),
            rc.day,
            klass,
            rc.kind,
            rc.ref,
            rc.currency,
            rc.amount_minor,
            rc.fee_minor,
            rc.status,
            case((rc.waiting == 1, "auto"), else_="open"),
            literal(""),
            literal(now, UTCDateTime()),
        ).where(rc.in_scope == 1, rc.counts == 1, pairing.unpaired_record(self.left_pairs, self.left_records))
        await self._insert_items(chosen, with_line=False, with_record=True)

    async def _insert_items(self, chosen: Any, *, with_line: bool, with_record: bool) -> None:
        names = ["source", "business_day", "class_"]
        if with_line:
            names.append("line_id")
        if with_record:
            names += ["record_kind", "record_ref"]
        names.append("currency")
        if with_record:
            names.append("expected_minor")
        if with_line:
            names.append("found_minor")
        if with_record:
            names.append("expected_fee_minor")
        if with_line:
            names.append("found_fee_minor")
        if with_record:
            names.append("expected_status")
        if with_line:
            names += ["found_status", "line_kind"]
        names += ["state", "note", "matched_at"]
        await self._exec(insert(ITEMS).from_select(names, chosen))

    async def drop(self) -> None:
        for table in (self.left_pairs, self.left_records, self.left_lines, self.pairs, self.records, self.lines):
            await drop_scratch_table(self.session, table)
        if self.plain is not None:
            for table in (self.payment_refs, self.line_ids):
                await drop_scratch_table(self.session, table)
        if self.window_payments is not None:
            await drop_scratch_table(self.session, self.window_payments)
