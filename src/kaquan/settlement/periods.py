"""Settlement periods: whole local days in the merchant's time zone, as UTC instants [start, end).

Daily: one day, run the next day (T+1). Weekly: Monday to Sunday. Monthly: the
first to the last day of a calendar month. An order at 23:59:59 local on the
last day belongs to the period; one at 00:00:00 the next day does not.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kaquan.settlement.errors import InvalidPeriod

MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    first_day: date
    last_day: date
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    @property
    def label(self) -> str:
        return f"{self.first_day.isoformat()}..{self.last_day.isoformat()}"


def local_midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def period_of(first_day: date, last_day: date, zone: str) -> Period:
    if last_day < first_day:
        raise InvalidPeriod(f"the period ends ({last_day}) before it starts ({first_day})", field="period")
    if (last_day - first_day).days >= MAX_DAYS:
        raise InvalidPeriod(f"a period is at most {MAX_DAYS} days", field="period")
    return Period(first_day, last_day, local_midnight(first_day, zone), local_midnight(last_day + timedelta(1), zone))


def parse_period(text: str, zone: str) -> Period:
    """`2026-12-01..2026-12-31` (local days, both included); one date is a one-day period."""
    first, dots, last = text.strip().partition("..")
    try:
        first_day = date.fromisoformat(first.strip())
        last_day = date.fromisoformat(last.strip()) if dots else first_day
    except ValueError as exc:
        raise InvalidPeriod(f"a period is YYYY-MM-DD..YYYY-MM-DD, not {text!r}", field="period") from exc
    return period_of(first_day, last_day, zone)


def cycle_period(cycle: str, day: date, zone: str) -> Period:
    """The period of `cycle` that contains the local day `day`."""
    if cycle == "daily":
        return period_of(day, day, zone)
    if cycle == "weekly":
        monday = day - timedelta(days=day.weekday())
        return period_of(monday, monday + timedelta(days=6), zone)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return period_of(first, following - timedelta(days=1), zone)


def last_closed_period(cycle: str, now: datetime, zone: str) -> Period:
    """The latest period of `cycle` that has ended by `now` (yesterday's, for a daily T+1 cycle)."""
    today = now.astimezone(ZoneInfo(zone)).date()
    current = cycle_period(cycle, today, zone)
    return cycle_period(cycle, current.first_day - timedelta(days=1), zone)
