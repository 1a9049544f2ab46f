"""Reconciliation: statements stored once, matched against kaquan's payments and refunds, differences worked off.

`importing.import_statement` stores a statement's lines (read by
`kaquan.statements`) once each; `matching.match_period` classes every line and
every kaquan payment and refund of a period, in SQL; `worklist` lists the
differences and lets finance annotate and resolve them, posting adjustments to
the ledger through `accounting.book_adjustment`. docs/reconciliation.md.

The public surface is what this module exports; other modules use only that.
"""

from kaquan.reconciliation.accounts import configured_account, file_sha256
from kaquan.reconciliation.days import GATEWAY_SOURCES, business_day
from kaquan.reconciliation.errors import (
    AlreadyResolved,
    BadPeriod,
    DifferenceNotFound,
    NothingToResolve,
    StatementWrongAccount,
    UnknownSource,
)
from kaquan.reconciliation.importing import ImportResult, import_statement
from kaquan.reconciliation.matching import MatchSummary, counts, match_period
from kaquan.reconciliation.models import CLASSES, STATES
from kaquan.reconciliation.worklist import (
    OPEN_STATES,
    RESOLUTIONS,
    DifferenceView,
    Resolution,
    adjustment_of,
    annotate,
    get_difference,
    list_differences,
    resolve,
)

__all__ = [
    "CLASSES",
    "GATEWAY_SOURCES",
    "OPEN_STATES",
    "RESOLUTIONS",
    "STATES",
    "AlreadyResolved",
    "BadPeriod",
    "DifferenceNotFound",
    "DifferenceView",
    "ImportResult",
    "MatchSummary",
    "NothingToResolve",
    "Resolution",
    "StatementWrongAccount",
    "UnknownSource",
    "adjustment_of",
    "annotate",
    "business_day",
    "configured_account",
    "counts",
    "file_sha256",
    "get_difference",
    "import_statement",
    "list_differences",
    "match_period",
    "resolve",
]
