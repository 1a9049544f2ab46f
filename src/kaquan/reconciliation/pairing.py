"""The SELECTs that pair a period's statement lines with kaquan's records (`matching` runs them into pairs).

The tables are matching's scratch copies (`scratch_tables`): lines with their id,
occurrence, business day and figures; records with their kind, reference and day;
pairs as (line_id, record_kind, record_ref, day, agrees).
"""

from typing import Any

from sqlalchemy import FromClause, Table, and_, case, exists, func, literal, or_, select

# Statuses a statement prints for a payment that did not go through, or went back.
UNPAID_STATUSES = ("CLOSED", "REVOKED", "NOTPAY", "PAYERROR", "USERPAYING", "FAILED", "已关闭", "未支付", "支付失败")
REFUNDED_STATUSES = ("REFUND", "REFUNDED", "已退款", "全额退款")
PAID_HERE = ("succeeded", "refunded")
PAIR_NAMES = ["line_id", "record_kind", "record_ref", "day", "agrees"]


def pair_class(lines: FromClause, records: FromClause) -> Any:
    """The class of a line and a record paired: status first, then amount, then fee; else `matched`."""
    lc, rc = lines.c, records.c
    line_status = func.upper(lc.status)
    payment_class = case(
        (
            or_(
                rc.status.not_in(PAID_HERE),
                line_status.in_(UNPAID_STATUSES),
                and_(line_status.in_(REFUNDED_STATUSES), rc.status != "refunded"),
            ),
            "status_mismatch",
        ),
        (or_(lc.amount_minor != rc.amount_minor, lc.currency != rc.currency), "amount_mismatch"),
        (lc.fee_minor != rc.fee_minor, "fee_mismatch"),
        else_="matched",
    )
    refund_class = case(
        (rc.status != "succeeded", "status_mismatch"),
        (or_(lc.amount_minor != rc.amount_minor, lc.currency != rc.currency), "refund_amount_mismatch"),
        (lc.fee_minor != rc.fee_minor, "fee_mismatch"),
        else_="matched",
    )
    return case((rc.kind == "payment", payment_class), else_=refund_class)


def surely_matched(lines: FromClause, records: FromClause) -> Any:
    """A payment line and payment that `pair_class` classes `matched`, by a test cheaper to run over a million
    pairs (one `upper`, no CASE): the figures agree, the payment succeeded and the line's status says neither
    unpaid nor refunded. A refunded payment the line shows refunded is `matched` too, but not surely so here."""
    lc, rc = lines.c, records.c
    return and_(
        lc.amount_minor == rc.amount_minor,
        lc.fee_minor == rc.fee_minor,
        lc.currency == rc.currency,
        rc.status == "succeeded",
        func.upper(lc.status).not_in(UNPAID_STATUSES + REFUNDED_STATUSES),
    )


def unpaired_line(pairs: Table, lines: Table) -> Any:
    return ~exists().where(pairs.c.line_id == lines.c.id)


def unpaired_record(pairs: Table, records: Table) -> Any:
    p, r = pairs.c, records.c
    return ~exists().where(p.record_kind == r.kind, p.record_ref == r.ref)


def by_reference(lines: Table, records: Table, line_ref: str, record_ref: str, kind: str) -> Any:
    """A line and a record of `kind` where the line's `line_ref` (not blank, first occurrence) is the record's
    `record_ref`."""
    lc, rc = lines.c, records.c
    return and_(
        lc.kind == kind,
        lc.occurrence == 0,
        rc.kind == kind,
        lc[line_ref] != "",
        lc[line_ref] == rc[record_ref],
    )


def row_per_line(lines: Table, records: Table, condition: Any, *eligible: Any) -> Any:
    """A pair per line that `condition` joins to its record, where no other line meets that record."""
    lc, rc = lines.c, records.c
    agrees = case((pair_class(lines, records) == "matched", 1), else_=0)
    return (
        select(lc.id, rc.kind, rc.ref, func.coalesce(rc.day, lc.business_day), agrees)
        .select_from(lines.join(records, condition))
        .where(*eligible)
    )


def first_lines(lines: Table, records: Table, condition: Any, *eligible: Any) -> Any:
    """Each record with its first line where `condition` joins them: it agrees if it met that line only."""
    lc, rc = lines.c, records.c
    agreeing = func.min(case((pair_class(lines, records) == "matched", 1), else_=0))
    agrees = case((and_(func.count() == 1, agreeing == 1), 1), else_=0)
    day = func.coalesce(func.min(rc.day), func.min(lc.business_day))
    return (
        select(func.min(lc.id), rc.kind, rc.ref, day, agrees)
        .select_from(lines.join(records, condition))
        .where(*eligible)
        .group_by(rc.kind, rc.ref)
    )


def shared_references(lines: Table, line_ref: str, kind: str) -> Any:
    """The references (`line_ref`) more than one line of `kind` gives."""
    lc = lines.c
    return (
        select(lc[line_ref])
        .where(lc.kind == kind, lc.occurrence == 0, lc[line_ref] != "")
        .group_by(lc[line_ref])
        .having(func.count() > 1)
    )


def by_amount(pairs: Table, lines_table: Table, records_table: Table) -> Any:
    """The payment lines left over paired by amount, currency and business day: the k-th such line of an amount
    on a day with the k-th unpaired payment of that amount on that day, both in time order."""
    lc, rc = lines_table.c, records_table.c
    by = (lc.amount_minor, lc.currency, lc.business_day)
    lines = (
        select(
            lc.id,
            *by,
            lc.in_scope,
            func.row_number().over(partition_by=by, order_by=(lc.occurred_at, lc.id)).label("rank"),
        )
        .where(lc.kind == "payment", lc.occurrence == 0, unpaired_line(pairs, lines_table))
        .subquery()
    )
    rby = (rc.amount_minor, rc.currency, rc.day)
    recs = (
        select(
            rc.kind,
            rc.ref,
            *rby,
            rc.in_scope,
            func.row_number().over(partition_by=rby, order_by=(rc.at, rc.ref)).label("rank"),
        )
        .where(rc.kind == "payment", rc.counts == 1, unpaired_record(pairs, records_table))
        .subquery()
    )
    chosen = (
        select(lines.c.id, recs.c.kind, recs.c.ref, recs.c.day, literal(0))  # classed with the differences
        .select_from(
            lines.join(
                recs,
                and_(
                    lines.c.amount_minor == recs.c.amount_minor,
                    lines.c.currency == recs.c.currency,
                    lines.c.business_day == recs.c.day,
                    lines.c.rank == recs.c.rank,
                ),
            )
        )
        .where(lines.c.in_scope + recs.c.in_scope > 0)
    )
    return chosen
