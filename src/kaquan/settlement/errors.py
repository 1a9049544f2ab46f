"""Settlement errors: each is raised before anything is written, so a refused request changes nothing."""

from kaquan.kit.errors import BadInput, Conflict, NotFound


class InvalidRule(BadInput):
    """A rule that cannot be applied: a negative or oversized rate, tiers not ascending, an unknown cycle…"""

    code = "invalid_settlement_rule"


class InvalidPeriod(BadInput):
    """A period that is not `YYYY-MM-DD..YYYY-MM-DD`, ends before it starts, or has not ended yet."""

    code = "invalid_period"


class UnknownCounterparty(NotFound):
    """No agent or marketplace store by that name (`agent:<code>` or `marketplace:<store>`)."""

    code = "unknown_counterparty"


class NoRule(NotFound):
    """The counterparty has no settlement rule in force for the period: set one first."""

    code = "no_settlement_rule"


class RunNotFound(NotFound):
    """No such run (admin), or no such confirmed statement of the caller (open API)."""

    code = "statement_not_found"


class PeriodOverlaps(Conflict):
    """A confirmed run of the same counterparty already covers part of this period."""

    code = "period_overlaps"


class StaleDraft(Conflict):
    """The ledger moved since the draft was computed (another run was confirmed): run the period again."""

    code = "stale_draft"


class InvalidFormat(BadInput):
    code = "invalid_format"
