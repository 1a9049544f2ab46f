"""Which statement reader a source's file goes to, and the account it must be for.

A source is a gateway (`wechatpay`, `alipay`, `stripe`), a marketplace store
(`marketplace:<store>`), an agent (`agent:<code>`) or a generic CSV/XLSX source
read through a saved column mapping (`generic:<mapping>`). The store, agent or
mapping must exist before its file is read.
"""

from collections.abc import Callable
from typing import IO

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels import agents, marketplace
from kaquan.kit.db import Database
from kaquan.reconciliation.accounts import configured_account, stream_sha256
from kaquan.reconciliation.days import GATEWAY_SOURCES
from kaquan.reconciliation.errors import UnknownSource
from kaquan.reconciliation.importing import ImportResult, import_statement
from kaquan.reconciliation.mappings import column_mapping
from kaquan.statements import Statement, open_statement

PARTY_KINDS = ("marketplace", "agent", "generic")
MAX_STATEMENT_BYTES = 512 * 1024 * 1024
SOURCE_HELP = "wechatpay, alipay, stripe, marketplace:<store>, agent:<code> or generic:<mapping>"


def checked_source(source: str) -> tuple[str, str]:
    """(kind, name): ("wechatpay", ""), ("marketplace", "tmall-main"), …; UnknownSource for anything else."""
    if source in GATEWAY_SOURCES:
        return source, ""
    kind, colon, name = source.partition(":")
    if colon and kind in PARTY_KINDS and name and len(source) <= 64:
        return kind, name
    raise UnknownSource(f"{source[:80]!r} is not a source kaquan imports: {SOURCE_HELP}", source=source[:80])


async def open_source(
    session: AsyncSession, source: str, stream: IO[bytes], *, account: str | None = None
) -> tuple[Statement, str | None]:
    """The statement reader for `source`'s file, and the account it must name (`account`, else the gateway's)."""
    kind, name = checked_source(source)
    if kind in GATEWAY_SOURCES:
        return open_statement(kind, stream), account or configured_account(kind)
    if kind == "marketplace":
        await marketplace.get_store(session, name)
        return open_statement("marketplace", stream, account=name), None
    if kind == "agent":
        await agents.by_code(session, name)
        return open_statement("agent", stream, account=name), None
    return open_statement("generic", stream, mapping=await column_mapping(session, name)), None


async def import_file(
    db: Database,
    session: AsyncSession,
    source: str,
    stream: IO[bytes],
    *,
    filename: str,
    actor: str,
    account: str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ImportResult:
    """A counterparty's file stored once: known by its digest, read by `source`'s reader, checked against the account.

    The one sequence behind the admin API, the console, the CLI and the daily bill job; `stream` must be seekable.
    """
    digest = stream_sha256(stream, max_bytes=MAX_STATEMENT_BYTES)
    statement, expected = await open_source(session, source, stream, account=account)

    async def reopen() -> Statement:
        stream.seek(0)
        return (await open_source(session, source, stream, account=account))[0]

    return await import_statement(
        db,
        session,
        statement,
        sha256=digest,
        filename=filename,
        actor=actor,
        expected_account=expected,
        on_batch=on_batch,
        reopen=reopen,
    )
