"""Money as integer minor units plus an ISO 4217 currency. Never floats."""

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


def supported_currencies() -> list[str]:
    return sorted(_MINOR_DIGITS)
