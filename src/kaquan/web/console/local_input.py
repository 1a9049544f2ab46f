"""What an operator types into a console form, read the way they meant it: times in the merchant's zone."""

from datetime import datetime
from zoneinfo import ZoneInfo

from kaquan.kit.bounds import INT32_MAX
from kaquan.kit.errors import BadInput


def local_moment(text: str, zone: ZoneInfo, *, field: str) -> datetime:
    """A `datetime-local` field (`2026-12-06T20:00`) as an aware time in `zone`, the zone the form is labelled with."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"{field}: a date and time is YYYY-MM-DD HH:MM", field=field) from None
    if moment.tzinfo is not None:  # a script may send an offset of its own: honour it
        return moment
    return moment.replace(tzinfo=zone)


def zone_label(zone: ZoneInfo, at: datetime) -> str:
    """`Asia/Shanghai (UTC+8)`: how the form says which zone its times are in."""
    offset = at.astimezone(zone).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    hours, rest = divmod(abs(minutes), 60)
    return f"{zone.key} (UTC{'+' if minutes >= 0 else '-'}{hours}{f':{rest:02d}' if rest else ''})"


def whole_number(text: str, *, field: str, minimum: int = 1, maximum: int = INT32_MAX) -> int:
    """A count typed into a form (`12`), refused as bad input when it is not a whole number in range."""
    cleaned = text.strip()
    if not (cleaned.isascii() and cleaned.isdigit()) or not minimum <= int(cleaned) <= maximum:
        raise BadInput(f"{field}: a whole number from {minimum} to {maximum}", field=field, value=text[:40])
    return int(cleaned)
