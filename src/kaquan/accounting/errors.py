"""Accounting errors: raised before anything is posted, so a refused booking changes nothing."""

from kaquan.kit.errors import BadInput


class InvalidBooking(BadInput):
    """A booking that cannot be right: a non-positive amount, a fee above the amount, a currency not the order's."""

    code = "invalid_booking"
