"""The shapes of the scratch tables: a file's lines as read, and matching's copies of a period's lines and records and
the pairs it finds."""

from typing import Any

from sqlalchemy import BigInteger, Column, Date, Index, Integer, String

from kaquan.kit.models import UTCDateTime


def pair_columns(*extra: Column[Any] | Index) -> list[Column[Any] | Index]:
    """A pair as the passes find it: its line, its record, its day (the record's) and whether the two agree."""
    return [
        Column("record_kind", String(16), nullable=False),
        Column("record_ref", String(128), nullable=False),
        Column("day", Date, nullable=False),
        Column("agrees", Integer, nullable=False),
        *extra,
    ]


def line_figures() -> list[Column[Any]]:
    """What a statement line says, in the reader's order (`StatementLine`): staged at import, matched after."""
    return [
        Column("kind", String(16), nullable=False),
        Column("occurred_at", UTCDateTime(), nullable=False),
        Column("amount_minor", BigInteger, nullable=False),
        Column("fee_minor", BigInteger, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("merchant_ref", String(128), nullable=False),
        Column("counterparty_ref", String(128), nullable=False),
        Column("refund_ref", String(128), nullable=False),
        Column("status", String(32), nullable=False),
    ]


def line_columns() -> list[Column[Any]]:
    return [
        Column("id", BigInteger, nullable=False),
        Column("occurrence", Integer, nullable=False),
        Column("business_day", Date, nullable=False),
        *line_figures(),
        Column("in_scope", Integer, nullable=False),
    ]


def record_columns() -> list[Column[Any]]:
    return [
        Column("kind", String(16), nullable=False),
        Column("ref", String(128), nullable=False),
        Column("txn_id", String(128)),
        Column("amount_minor", BigInteger, nullable=False),
        Column("fee_minor", BigInteger, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("status", String(20), nullable=False),
        Column("at", UTCDateTime(), nullable=False),
        Column("day", Date),
        Column("counts", Integer, nullable=False),
        Column("in_scope", Integer, nullable=False),
        Column("waiting", Integer, nullable=False),
    ]
