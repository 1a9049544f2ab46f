"""The double-entry ledger: accounts, balanced transfers, and balances that never fall below their floor.

Every money movement is a transfer whose legs sum to zero in each currency.
Legs are signed debit-positive; an account's balance is kept in its normal
sign, so a credit-normal account (an agent's prepaid deposit, a liability)
grows with credits. Transfers and postings are only ever inserted: this module
has no function that updates or deletes them, and a correction is a new
transfer (`reverse`). How writers lock: see `ledger.posting`.

The public surface is what this module exports; other modules use only that.
"""

from kaquan.ledger.accounts import (
    Balance,
    LedgerAccount,
    Normal,
    account_by_code,
    account_ids_by_code,
    balance,
    locked_balance,
    open_account,
    set_floor,
)
from kaquan.ledger.posting import REVERSAL, Leg, TransferSpec, post, post_many, post_many_locking_last, reverse
from kaquan.ledger.reading import MAX_PAGE, Entry, LedgerCheck, balance_as_of, check, check_floors, entries
from kaquan.ledger.transfers import PostedLeg, PostedTransfer, posted, posted_by_kind, posted_of_kinds

__all__ = [
    "MAX_PAGE",
    "REVERSAL",
    "Balance",
    "Entry",
    "LedgerAccount",
    "LedgerCheck",
    "Leg",
    "Normal",
    "PostedLeg",
    "PostedTransfer",
    "TransferSpec",
    "account_by_code",
    "account_ids_by_code",
    "balance",
    "balance_as_of",
    "check",
    "check_floors",
    "entries",
    "locked_balance",
    "open_account",
    "post",
    "post_many",
    "post_many_locking_last",
    "posted",
    "posted_by_kind",
    "posted_of_kinds",
    "reverse",
    "set_floor",
]
