"""Ids spelled as text: only ASCII digits naming a row a table can hold."""

import pytest

from kaquan.kit.bounds import INT32_MAX, INT64_MAX, id_from_text


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("0042", 42), (str(INT32_MAX), INT32_MAX)])
def test_digits_within_the_column_are_an_id(text: str, expected: int) -> None:
    assert id_from_text(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "0", "-1", " 1", "1.0", "²", "١٢", "1e3", str(INT32_MAX + 1), "9" * 30, "SKU-1"],
    ids=[
        "empty",
        "zero",
        "negative",
        "space",
        "decimal",
        "superscript",
        "arabic-indic",
        "exponent",
        "past-32-bits",
        "30-digits",
        "a-code",
    ],
)
def test_anything_else_is_no_id(text: str) -> None:
    assert id_from_text(text) is None


def test_a_64_bit_table_takes_larger_ids_but_not_past_64_bits() -> None:
    assert id_from_text(str(INT64_MAX), maximum=INT64_MAX) == INT64_MAX
    assert id_from_text(str(INT64_MAX + 1), maximum=INT64_MAX) is None
