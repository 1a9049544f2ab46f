"""Contacts as buyers type them, normalized so one person is one contact: lowercase e-mail, E.164-ish phone."""

import re
from dataclasses import dataclass
from typing import Literal

from kaquan.buyers.errors import InvalidContact

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}")
_PHONE_NOISE = re.compile(r"[\s().\-]")


@dataclass(frozen=True)
class Contact:
    kind: Literal["email", "phone"]
    value: str  # normalized: what tokens name and limits count


def normalize(text: str, *, country_code: str) -> Contact:
    """An e-mail address (lowercased) or a phone number as `+<country><number>`.

    A number written without `+` (or `00`) is taken as national, in `country_code`; a leading
    trunk `0` is dropped. Anything else is refused: a contact must be somewhere a code can go.
    """
    raw = text.strip()
    if "@" in raw:
        email = raw.lower()
        if len(email) > 254 or not _EMAIL.fullmatch(email):
            raise InvalidContact("not an e-mail address")
        return Contact("email", email)
    digits = _PHONE_NOISE.sub("", raw)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not digits.startswith("+"):
        digits = "+" + country_code + digits.removeprefix("0")
    if not re.fullmatch(r"\+[1-9][0-9]{7,14}", digits):
        raise InvalidContact("not a phone number: + country code and 8 to 15 digits in all")
    return Contact("phone", digits)
