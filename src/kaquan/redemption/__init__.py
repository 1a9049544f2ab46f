"""Vouchers the merchant issues itself, and redeeming (核销) sold codes: once only, hard to brute-force.

`redeeming` holds the redemption rules and attempt limits, `vouchers` the
self-issued codes (generated, then imported like any other code), `tasks` the
outbox handler told of each redemption, `models` the redemptions table (still
named `inventory_redemptions`). This module sits above inventory: the codes and
their lifecycle are inventory's.

The public surface is what this module exports; other modules use only that.
"""

from kaquan.redemption.redeeming import (
    FAILURE_LIMIT,
    FAILURES,
    LOCKOUT_WINDOW_S,
    MAX_CODE_LENGTH,
    OFFLINE_CLOCK_SKEW,
    REDEEMED_TOPIC,
    AlreadyRedeemed,
    Lockout,
    NotAVoucher,
    Redeemed,
    RedeemLockedOut,
    RedeemRequest,
    VoucherCodeInvalid,
    VoucherExpired,
    VoucherNotFound,
    VoucherNotSold,
    VoucherState,
    VoucherStateName,
    VoucherVoided,
    attempt_redemption,
    attempt_verification,
    canonical_code,
    check_request,
    redeem,
    verify,
)

__all__ = [
    "FAILURES",
    "FAILURE_LIMIT",
    "LOCKOUT_WINDOW_S",
    "MAX_CODE_LENGTH",
    "OFFLINE_CLOCK_SKEW",
    "REDEEMED_TOPIC",
    "AlreadyRedeemed",
    "Lockout",
    "NotAVoucher",
    "RedeemLockedOut",
    "RedeemRequest",
    "Redeemed",
    "VoucherCodeInvalid",
    "VoucherExpired",
    "VoucherNotFound",
    "VoucherNotSold",
    "VoucherState",
    "VoucherStateName",
    "VoucherVoided",
    "attempt_redemption",
    "attempt_verification",
    "canonical_code",
    "check_request",
    "redeem",
    "verify",
]
