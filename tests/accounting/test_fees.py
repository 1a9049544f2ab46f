"""Gateway fees round half up to the fen; refunds give the fee back so that the parts add up to the whole."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaquan.accounting import InvalidBooking, fee_returned, gateway_fee, round_half_up


def test_alipay_charges_twelve_fen_on_nineteen_ninety_at_zero_point_six_percent() -> None:
    assert gateway_fee(1990, 60) == 12  # 11.94 fen


@pytest.mark.parametrize(
    ("amount", "rate_bp", "fee"),
    [
        (250, 20, 1),  # 0.5 fen: half goes up
        (249, 20, 0),  # 0.498 fen
        (25, 60, 0),  # 0.15 fen
        (84, 60, 1),  # 0.504 fen
        (83, 60, 0),  # 0.498 fen
        (10_000, 60, 60),
        (0, 60, 0),
        (1990, 0, 0),
        (1990, 10_000, 1990),
    ],
)
def test_a_fee_is_rounded_half_up_to_the_minor_unit(amount: int, rate_bp: int, fee: int) -> None:
    assert gateway_fee(amount, rate_bp) == fee


@pytest.mark.parametrize(
    ("amount", "rate_bp", "fixed", "fee"),
    [
        (1990, 290, 30, 88),  # Stripe on 19.90: 57.71 cents rounds to 58, plus the fixed 30
        (10_000, 290, 30, 320),
        (50, 290, 30, 31),  # 1.45 cents rounds to 1
        (20, 290, 30, 20),  # the fixed part alone is more than the charge: the fee stops at the amount
        (0, 290, 30, 0),
        (1990, 0, 30, 30),
        (1990, 60, 0, 12),  # no fixed part: the rate alone, as Alipay and WeChat Pay charge
    ],
)
def test_a_fixed_part_is_added_to_the_rounded_rate_and_the_fee_never_exceeds_the_amount(
    amount: int, rate_bp: int, fixed: int, fee: int
) -> None:
    assert gateway_fee(amount, rate_bp, fixed) == fee


@given(st.integers(0, 10**9), st.integers(0, 10_000), st.integers(0, 10_000))
def test_a_fixed_part_adds_to_the_rate_up_to_the_amount(amount: int, rate: int, fixed: int) -> None:
    fee = gateway_fee(amount, rate, fixed)
    assert 0 <= fee <= amount
    assert fee == min(amount, gateway_fee(amount, rate) + fixed)


def test_a_negative_amount_or_a_rate_outside_zero_to_a_hundred_percent_is_refused() -> None:
    for amount, rate, fixed in ((-1, 60, 0), (100, -1, 0), (100, 10_001, 0), (100, 290, -1)):
        with pytest.raises(InvalidBooking):
            gateway_fee(amount, rate, fixed)


def test_a_refund_of_a_nineteen_ninety_sale_in_two_parts_gives_back_the_twelve_fen_fee_exactly() -> None:
    first = fee_returned(fee_minor=12, paid_minor=1990, refunded_before_minor=0, refund_minor=990)
    second = fee_returned(fee_minor=12, paid_minor=1990, refunded_before_minor=990, refund_minor=1000)
    assert (first, second) == (6, 6)  # 5.97 → 6, then 12 − 6


def test_a_refund_larger_than_what_is_left_or_not_positive_is_refused() -> None:
    with pytest.raises(InvalidBooking):
        fee_returned(fee_minor=12, paid_minor=1990, refunded_before_minor=1000, refund_minor=991)
    with pytest.raises(InvalidBooking):
        fee_returned(fee_minor=12, paid_minor=1990, refunded_before_minor=0, refund_minor=0)
    with pytest.raises(InvalidBooking):
        fee_returned(fee_minor=1991, paid_minor=1990, refunded_before_minor=0, refund_minor=1)


@st.composite
def refunded_payments(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """A payment, its fee, and partial refunds that together refund part or all of it."""
    paid = draw(st.integers(min_value=1, max_value=10**9))
    fee = draw(
        st.one_of(
            st.integers(min_value=0, max_value=paid), st.builds(gateway_fee, st.just(paid), st.integers(0, 10_000))
        )
    )
    parts: list[int] = []
    left = paid
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        if left == 0:
            break
        part = draw(st.one_of(st.integers(min_value=1, max_value=left), st.just(left), st.just(1)))
        parts.append(part)
        left -= part
    if draw(st.booleans()) and left:
        parts.append(left)
    return paid, fee, parts


def _given_back(paid: int, fee: int, parts: list[int]) -> list[int]:
    backs, before = [], 0
    for part in parts:
        backs.append(fee_returned(fee_minor=fee, paid_minor=paid, refunded_before_minor=before, refund_minor=part))
        before += part
    return backs


@given(refunded_payments())
def test_refunds_never_give_back_more_than_the_fee_and_a_full_refund_gives_it_back_exactly(
    case: tuple[int, int, list[int]],
) -> None:
    paid, fee, parts = case
    backs = _given_back(paid, fee, parts)

    assert all(back >= 0 for back in backs)
    assert sum(backs) <= fee
    assert sum(backs) == round_half_up(fee * sum(parts), paid)  # the parts add up to the fee's share of the whole
    if sum(parts) == paid:
        assert sum(backs) == fee


def test_every_split_of_small_payments_into_two_refunds_gives_the_fee_back_exactly() -> None:
    for paid in range(1, 120):
        for fee in range(paid + 1):
            for first in range(1, paid):
                assert sum(_given_back(paid, fee, [first, paid - first])) == fee
