"""Times and dates as operators type them: absolute ISO 8601, or relative to now, so a script never goes stale.

A time is `2026-12-01T20:00:00+08:00` (a zone is required), `now`, or now plus or
minus an amount: `+2h`, `+30m`, `-1d`, `+1w` (s, m, h, d, w). A date is
`2027-12-31`, `today` (in the merchant's zone, KAQUAN_TIMEZONE), or today plus or
minus days, weeks or years: `+30d`, `-1d`, `+2w`, `+1y`.
"""

import re
from datetime import date, datetime, timedelta

import typer

from kaquan.kit import clock
from kaquan.kit.config import get_settings

_RELATIVE = re.compile(r"(?:now|today)?\s*([+-])\s*(\d{1,6})\s*([a-z])")
_TIME_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DATE_UNITS = {"d": 1, "w": 7}


def moment(value: str, option: str) -> datetime:
    """An aware time from an option: ISO 8601 with a zone, `now`, or `+2h`-style offsets from now."""
    text = value.strip().lower()
    if text == "now":
        return clock.now()
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        sign, amount, unit = relative.groups()
        if unit not in _TIME_UNITS:
            raise typer.BadParameter(f"{value!r}: the unit is one of s, m, h, d, w", param_hint=option)
        step = timedelta(**{_TIME_UNITS[unit]: int(amount)})
        return clock.now() + (step if sign == "+" else -step)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a time like 2026-12-01T20:00:00+08:00, now, or +2h", param_hint=option
        ) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} needs a time zone, e.g. +08:00 or Z", param_hint=option)
    return parsed


def day(value: str, option: str) -> date:
    """A calendar date from an option: YYYY-MM-DD, `today`, or `+30d`-style offsets from today (merchant's zone)."""
    text = value.strip().lower()
    today = clock.now().astimezone(get_settings().zone()).date()
    if text == "today":
        return today
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        sign, amount, unit = relative.groups()
        count = int(amount) if sign == "+" else -int(amount)
        if unit == "y":
            try:
                return today.replace(year=today.year + count)
            except ValueError:  # 29 February in a year without one
                return today.replace(year=today.year + count, day=28)
        if unit not in _DATE_UNITS:
            raise typer.BadParameter(f"{value!r}: the unit is one of d, w, y", param_hint=option)
        return today + timedelta(days=count * _DATE_UNITS[unit])
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date like 2027-12-31, today, or +30d", param_hint=option
        ) from None
