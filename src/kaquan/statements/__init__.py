"""Statements: what a counterparty says happened, read from its own file formats into kaquan's terms.

A statement is a payment provider's trade bill, a marketplace's settlement
export, an agent's own order statement, or any CSV/XLSX whose columns finance
mapped once. This module only reads files: it owns no tables and imports
nothing of kaquan but `kit`. `reconciliation` stores and matches what it reads.

The public surface is what this module exports; other modules use only that.
"""

from kaquan.statements.frames import LINE_SCHEMA, lines_of
from kaquan.statements.lines import (
    ColumnarStatement,
    LineKind,
    Statement,
    StatementHeader,
    StatementLine,
    StatementRejected,
)
from kaquan.statements.mapping import ColumnMapping, MappingInvalid
from kaquan.statements.opening import STATEMENT_KINDS, open_statement

__all__ = [
    "LINE_SCHEMA",
    "STATEMENT_KINDS",
    "ColumnMapping",
    "ColumnarStatement",
    "LineKind",
    "MappingInvalid",
    "Statement",
    "StatementHeader",
    "StatementLine",
    "StatementRejected",
    "lines_of",
    "open_statement",
]
