"""What the console's list downloads share: the merchant's clock, words for codes, the file's name."""

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request

from kaquan.kit import clock
from kaquan.kit.tables import MEDIA_TYPES
from kaquan.web.i18n import Translate, language, translator

DOWNLOADS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the list as a file: CSV (UTF-8 with a BOM) or XLSX",
        "content": {
            media.split(";")[0]: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()
        },
    }
}
"""What a download route answers, for the OpenAPI document (the console's pages are documented as HTML)."""


def local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A time as the merchant's wall clock shows it (the column header names the zone)."""
    return moment.astimezone(zone) if moment is not None else None


def word(t: Translate, group: str, value: str) -> str:
    """A stored value (a status, a channel) in words; a value with no words (a merchant's own channel) as is."""
    key = f"{group}.{value}"
    text = t(key)
    return value if text == key else text


def wording(request: Request) -> Callable[[str, str], str]:
    """`word(group, value)` in the page's language, for templates."""
    t = translator(language(request))
    return lambda group, value: word(t, group, value)


def stem(name: str, zone: ZoneInfo) -> str:
    """`orders-20261206-0930`: what the file is and when, in the merchant's zone."""
    return f"{name}-{clock.now().astimezone(zone):%Y%m%d-%H%M}"
