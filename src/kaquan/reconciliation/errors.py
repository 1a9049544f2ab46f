"""Reconciliation's errors: each refuses before anything is stored or posted."""

from kaquan.kit.errors import BadInput, Conflict, NotFound


class StatementWrongAccount(BadInput):
    """The file is a statement of another merchant account than the one this gateway is configured with."""

    status = 422
    code = "statement_wrong_account"


class UnknownSource(BadInput):
    """A source reconciliation does not match against kaquan's records."""

    code = "reconciliation_unknown_source"


class BadPeriod(BadInput):
    """A period that ends before it starts."""

    code = "reconciliation_bad_period"


class DifferenceNotFound(NotFound):
    code = "reconciliation_difference_not_found"


class NothingToResolve(Conflict):
    """The item needs nobody (matched, or a timing difference still waiting for its day)."""

    code = "reconciliation_nothing_to_resolve"


class AlreadyResolved(Conflict):
    """The item was resolved before, another way."""

    code = "reconciliation_already_resolved"


class MappingNotFound(NotFound):
    code = "reconciliation_mapping_not_found"


class FetchNotFound(NotFound):
    code = "reconciliation_bill_fetch_not_found"


class ResolutionNotSupported(BadInput):
    """The resolution would move money kaquan has no booking for on this source (only no_action there)."""

    status = 422
    code = "reconciliation_resolution_not_supported"
