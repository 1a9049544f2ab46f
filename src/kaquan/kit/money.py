"""Money as integer minor units plus an ISO 4217 currency. Never floats."""

import re
from dataclasses import dataclass

from kaquan.kit.errors import BadInput

_MINOR_DIGITS = {"CNY": 2, "USD": 2, "EUR": 2, "HKD": 2, "JPY": 0, "KRW": 0}


class CurrencyMismatch(BadInput):
    code = "currency_mismatch"


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:
            raise TypeError("money is integer minor units")
        if self.currency not in _MINOR_DIGITS:
            raise BadInput(f"unsupported currency {self.currency!r}", currency=self.currency)

    def __add__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def times(self, quantity: int) -> "Money":
        return Money(self.minor * quantity, self.currency)

    def _same_currency(self, other: "Money") -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} and {other.currency}")

    def format(self) -> str:
        """Human display, e.g. `CNY 25.00`; computed with integers only."""
        digits = _MINOR_DIGITS[self.currency]
        if digits == 0:
            return f"{self.currency} {self.minor}"
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**digits)
        return f"{sign}{self.currency} {whole}.{frac:0{digits}d}"


def parse_amount(text: str, currency: str) -> int:
    """A person's amount in major units (`19.90`, `¥19.9`, `1,000`) as minor units; at most the currency's decimals."""
    if currency not in _MINOR_DIGITS:
        raise BadInput(f"unsupported currency {currency!r}", currency=currency)
    digits = _MINOR_DIGITS[currency]
    cleaned = text.strip().lstrip("¥￥").replace(",", "").strip()
    pattern = rf"(\d*)(?:\.(\d{{1,{digits}}}))?" if digits else r"(\d+)()"
    found = re.fullmatch(pattern, cleaned)
    if found is None or not (found.group(1) or found.group(2)):
        raise BadInput(f"an amount is a number with at most {digits} decimals, such as 19.90", field="amount")
    whole: str = found.group(1) or "0"
    frac: str = found.group(2) or ""
    scale: int = 10**digits
    return int(whole) * scale + int(frac.ljust(digits, "0") or "0")


def supported_currencies() -> list[str]:
    return sorted(_MINOR_DIGITS)


# How a buyer reads each currency's amounts: the symbol a Chinese shopper knows, before the number.
_SYMBOLS = {"CNY": "¥", "USD": "US$", "EUR": "€", "HKD": "HK$", "JPY": "JP¥", "KRW": "₩"}


def display(minor: int, currency: str) -> str:
    """Money as a shop shows it: `¥19.90`, `US$1,234.50`, `JP¥1,200`; integers only, thousands separated."""
    digits = _MINOR_DIGITS[currency]
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    number = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    return f"{sign}{_SYMBOLS[currency]}{number}"
