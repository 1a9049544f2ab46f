"""Business days: the day a counterparty files a record under, in its own time zone.

WeChat Pay and Alipay cut their bills at midnight Beijing time (UTC+8, no
daylight saving), Stripe at midnight UTC; marketplaces and agents in China use
Beijing time too.
"""

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo

import polars as pl
from sqlalchemy import ColumnElement, Date, case, literal

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
GATEWAY_SOURCES = ("wechatpay", "alipay", "stripe")
_ZONES: dict[str, tzinfo] = {"stripe": UTC}


def zone_of(source: str) -> tzinfo:
    return _ZONES.get(source, BEIJING)


def business_day(source: str, moment: datetime) -> date:
    return moment.astimezone(zone_of(source)).date()


def days_of(source: str, moments: pl.Expr) -> pl.Expr:
    """polars: the business days of UTC datetimes (every source's zone is one fixed offset, no daylight saving)."""
    offset = zone_of(source).utcoffset(None)
    if offset is None:
        raise ValueError(f"{source}'s time zone has no fixed offset")
    return (moments.dt.replace_time_zone(None) + offset).dt.date()


def day_start(source: str, day: date) -> datetime:
    """The first instant of `day` in the source's zone, in UTC."""
    return datetime.combine(day, time(0), zone_of(source)).astimezone(UTC)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def day_of(source: str, moment: ColumnElement[datetime], first: date, last: date) -> ColumnElement[date]:
    """SQL for the business day of `moment`, known to fall in days [first, last]: a CASE over the day boundaries.

    Portable and cheap: no time zone arithmetic in the database, one comparison per day spanned.
    """
    whens = [(moment < day_start(source, day + timedelta(days=1)), literal(day, Date)) for day in days(first, last)]
    return case(*whens[:-1], else_=literal(last, Date)) if len(whens) > 1 else literal(last, Date)
