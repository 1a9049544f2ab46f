"""Reconciliation: statements stored once, matched against kaquan's payments and refunds, differences worked off.

`importing.import_statement` stores a statement's lines (read by
`kaquan.statements`) once each; `matching.match_period` classes every line and
every kaquan payment and refund of a period, in SQL; `worklist` lists the
differences and lets finance annotate and resolve them, posting adjustments to
the ledger through `accounting.book_adjustment`; `matched` lists the pairs in
agreement, kept compact. docs/reconciliation.md.

The public surface is what this module exports; other modules use only that.
"""

from kaquan.reconciliation.accounts import configured_account, stream_sha256
from kaquan.reconciliation.bills import BillFetchView, fetch_due_bills, list_fetches, retry_fetch
from kaquan.reconciliation.days import GATEWAY_SOURCES, business_day
from kaquan.reconciliation.errors import (
    AlreadyResolved,
    BadPeriod,
    DifferenceNotFound,
    FetchNotFound,
    MappingNotFound,
    NothingToResolve,
    ResolutionNotSupported,
    StatementWrongAccount,
    UnknownSource,
)
from kaquan.reconciliation.export import CLASS_WORDS, RESOLUTION_WORDS, STATE_WORDS, csv_row, csv_text, money, words
from kaquan.reconciliation.imported import StatementView, list_statements
from kaquan.reconciliation.importing import ImportResult, import_statement
from kaquan.reconciliation.mappings import MappingView, column_mapping, get_mapping, list_mappings, save_mapping
from kaquan.reconciliation.matched import MatchedView, list_matched
from kaquan.reconciliation.matching import MatchSummary, counts, match_period
from kaquan.reconciliation.models import CLASSES, STATES, ClassName, StateName
from kaquan.reconciliation.sources import MAX_STATEMENT_BYTES, SOURCE_HELP, checked_source, import_file, open_source
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
    "CLASS_WORDS",
    "GATEWAY_SOURCES",
    "MAX_STATEMENT_BYTES",
    "OPEN_STATES",
    "RESOLUTIONS",
    "RESOLUTION_WORDS",
    "SOURCE_HELP",
    "STATES",
    "STATE_WORDS",
    "AlreadyResolved",
    "BadPeriod",
    "BillFetchView",
    "ClassName",
    "DifferenceNotFound",
    "DifferenceView",
    "FetchNotFound",
    "ImportResult",
    "MappingNotFound",
    "MappingView",
    "MatchSummary",
    "MatchedView",
    "NothingToResolve",
    "Resolution",
    "ResolutionNotSupported",
    "StateName",
    "StatementView",
    "StatementWrongAccount",
    "UnknownSource",
    "adjustment_of",
    "annotate",
    "business_day",
    "checked_source",
    "column_mapping",
    "configured_account",
    "counts",
    "csv_row",
    "csv_text",
    "fetch_due_bills",
    "get_difference",
    "get_mapping",
    "import_file",
    "import_statement",
    "list_differences",
    "list_fetches",
    "list_mappings",
    "list_matched",
    "list_statements",
    "match_period",
    "money",
    "open_source",
    "resolve",
    "retry_fetch",
    "save_mapping",
    "stream_sha256",
    "words",
]
