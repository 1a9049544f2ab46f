"""Amounts typed by a person become minor units exactly, or a clear refusal."""

import pytest

from kaquan.kit.errors import BadInput
from kaquan.kit.money import parse_amount


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("19.90", "CNY", 1990), ("¥19.9", "CNY", 1990), ("20", "CNY", 2000), (".5", "CNY", 50), ("1,000", "CNY", 100000)],
)
def test_an_amount_in_yuan_is_read_as_fen(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize("text", ["", "abc", "1.234", "-5", "1.", "1e3", ".", "1 000"])
def test_anything_else_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput):
        parse_amount(text, "CNY")


def test_a_currency_without_decimals_takes_none() -> None:
    assert parse_amount("500", "JPY") == 500
    with pytest.raises(BadInput):
        parse_amount("5.5", "JPY")
