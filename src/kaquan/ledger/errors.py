"""Ledger errors. Every one is raised before anything is written: a refused transfer changes nothing."""

from kaquan.kit.errors import BadInput, Conflict, DomainError, NotFound


class InvalidTransfer(BadInput):
    """The transfer is malformed: fewer than two legs, a zero leg, a bad kind, reference or memo."""

    code = "invalid_transfer"


class UnbalancedTransfer(BadInput):
    code = "unbalanced_transfer"


class UnknownAccount(BadInput):
    """A leg names an account that does not exist (bad input: the caller named it)."""

    code = "unknown_account"


class InvalidAccount(BadInput):
    code = "invalid_account"


class AccountNotFound(NotFound):
    code = "account_not_found"


class TransferNotFound(NotFound):
    code = "transfer_not_found"


class AccountConflict(Conflict):
    """An account with this code exists already with another currency or normal side."""

    code = "account_conflict"


class FloorAboveBalance(Conflict):
    """A floor above the current balance: the account would already be overdrawn."""

    code = "floor_above_balance"


class AlreadyReversed(Conflict):
    code = "already_reversed"


class InsufficientFunds(DomainError):
    """The transfer would take an account below its floor (minus the credit limit, for an agent's deposit)."""

    status = 402
    code = "insufficient_balance"

    def __init__(self, account: str, *, balance_minor: int, floor_minor: int, needed_minor: int) -> None:
        super().__init__(
            f"account {account}: {needed_minor} needed, {balance_minor - floor_minor} available above its floor",
            account=account,
            balance_minor=balance_minor,
            floor_minor=floor_minor,
            needed_minor=needed_minor,
        )
