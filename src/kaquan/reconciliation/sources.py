"""Which statement reader a source's file goes to, and the account it must be for."""

from typing import IO

from kaquan.reconciliation.accounts import configured_account
from kaquan.reconciliation.days import GATEWAY_SOURCES
from kaquan.reconciliation.errors import UnknownSource
from kaquan.statements import STATEMENT_KINDS, Statement, open_statement


def importable_sources() -> tuple[str, ...]:
    """The sources a file can be imported for: gateways whose format kaquan reads."""
    return tuple(kind for kind in STATEMENT_KINDS if kind in GATEWAY_SOURCES)


def checked_source(source: str) -> str:
    if source not in importable_sources():
        raise UnknownSource(
            f"{source!r} is not a source kaquan imports: one of {', '.join(importable_sources())}", source=source[:80]
        )
    return source


def open_source(source: str, stream: IO[bytes], *, account: str | None = None) -> tuple[Statement, str | None]:
    """The statement reader for `source`'s file, and the account it must name (`account`, else the gateway's)."""
    checked_source(source)
    return open_statement(source, stream), account or configured_account(source)
