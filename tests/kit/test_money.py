"""Money is integer minor units with a currency; never floats, never mixed currencies."""

import pytest

from kaquan.kit.errors import BadInput
from kaquan.kit.money import CurrencyMismatch, Money


def test_money_adds_and_multiplies_in_minor_units() -> None:
    assert Money(1990, "CNY").times(3) == Money(5970, "CNY")
    assert Money(1990, "CNY") + Money(10, "CNY") == Money(2000, "CNY")
    assert Money(100, "CNY") - Money(250, "CNY") == Money(-150, "CNY")


def test_money_formats_without_floating_point() -> None:
    assert Money(1990, "CNY").format() == "CNY 19.90"
    assert Money(5, "USD").format() == "USD 0.05"
    assert Money(-150, "CNY").format() == "-CNY 1.50"
    assert Money(500, "JPY").format() == "JPY 500"


def test_money_refuses_floats_unknown_currencies_and_mixing() -> None:
    with pytest.raises(TypeError):
        Money(19.9, "CNY")  # type: ignore[arg-type]
    with pytest.raises(BadInput):
        Money(100, "XXX")
    with pytest.raises(CurrencyMismatch):
        Money(100, "CNY") + Money(100, "USD")
