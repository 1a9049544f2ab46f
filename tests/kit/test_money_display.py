"""Money as a buyer reads it: the currency's symbol, thousands separated, the currency's own decimals."""

import pytest

from kaquan.kit.money import display, supported_currencies


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (1990, "CNY", "¥19.90"),
        (5, "CNY", "¥0.05"),
        (0, "CNY", "¥0.00"),
        (100_000_000, "CNY", "¥1,000,000.00"),
        (-1990, "CNY", "-¥19.90"),
        (123450, "USD", "US$1,234.50"),
        (1200, "JPY", "JP¥1,200"),
        (99, "EUR", "€0.99"),
        (1_000_000, "KRW", "₩1,000,000"),
        (5000, "HKD", "HK$50.00"),
    ],
)
def test_an_amount_reads_with_its_symbol_and_separators(minor: int, currency: str, shown: str) -> None:
    assert display(minor, currency) == shown


def test_every_supported_currency_has_a_symbol() -> None:
    for currency in supported_currencies():
        assert not display(1, currency).startswith(currency)
