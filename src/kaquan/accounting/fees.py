"""Gateway fees in whole minor units, and the share of a fee a refund gives back.

Rounding rule: a fee is rounded half up to the minor unit (fen), the way Alipay
and WeChat Pay round their service fee: 0.6 % of CNY 19.90 is 11.94 fen, charged
as 12 fen; 0.6 % of CNY 0.25 is 0.15 fen, charged as 0. Amounts and rates are
non-negative, so "half up" and "half away from zero" agree. A gateway may add a
fixed part per charge (Stripe: 2.9 % + 30 cents); it is added after rounding,
and the fee never exceeds the amount charged.

A refund gives back the fee by the sum-of-parts rule: after refunds totalling
R of a payment P whose fee was F, the fee given back so far is round_half_up(F ×
R / P). Each refund's share is that running total after it minus the total
before it, so the shares telescope: whatever the number and sizes of the
partial refunds, they add up to round_half_up(F × R / P) — never more than F,
and exactly F once the whole payment is refunded. The rule starts from the fee
actually charged (F), not from the rate, so it also holds for a fee that a
gateway's bill reports. A gateway that keeps its fee on refunds (Stripe does)
gives back 0: the caller passes 0 instead.
"""

from kaquan.accounting.errors import InvalidBooking

BASIS_POINTS = 10_000


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, for numerator >= 0 and denominator > 0, in integers only."""
    if numerator < 0 or denominator <= 0:
        raise InvalidBooking("rounding needs a non-negative numerator and a positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


def gateway_fee(amount_minor: int, rate_bp: int, fixed_minor: int = 0) -> int:
    """The fee on `amount_minor`: `rate_bp` basis points (60 = 0.6 %) rounded half up, plus `fixed_minor`.

    Capped at the amount: a gateway never keeps more than it took in.
    """
    if amount_minor < 0 or rate_bp < 0 or rate_bp > BASIS_POINTS or fixed_minor < 0:
        raise InvalidBooking(
            "a fee needs an amount of 0 or more, a rate of 0 to 10000 basis points and a fixed part of 0 or more",
            amount_minor=amount_minor,
            rate_bp=rate_bp,
            fixed_minor=fixed_minor,
        )
    return min(amount_minor, round_half_up(amount_minor * rate_bp, BASIS_POINTS) + fixed_minor)


def fee_returned(*, fee_minor: int, paid_minor: int, refunded_before_minor: int, refund_minor: int) -> int:
    """The fee one refund gives back: the fee's share of everything refunded after it, less the share before it.

    `refunded_before_minor` is what earlier refunds of the same payment returned
    (succeeded ones only); the refund must fit in what is left of the payment.
    """
    if not 0 <= fee_minor <= paid_minor or paid_minor <= 0:
        raise InvalidBooking("a fee is between 0 and the amount paid", fee_minor=fee_minor, paid_minor=paid_minor)
    if refunded_before_minor < 0 or refund_minor <= 0 or refunded_before_minor + refund_minor > paid_minor:
        raise InvalidBooking(
            "a refund is positive and fits in what is left of the payment",
            paid_minor=paid_minor,
            refunded_before_minor=refunded_before_minor,
            refund_minor=refund_minor,
        )
    after = round_half_up(fee_minor * (refunded_before_minor + refund_minor), paid_minor)
    before = round_half_up(fee_minor * refunded_before_minor, paid_minor)
    return after - before
