"""One entry point for every statement format: `open_statement(kind, stream, …)`."""

from typing import IO, Final

from kaquan.statements import agent, generic, marketplace, stripe
from kaquan.statements.alipay import AlipayDetail
from kaquan.statements.lines import Statement, StatementRejected
from kaquan.statements.mapping import ColumnMapping
from kaquan.statements.wechatpay import WeChatPayBill

STATEMENT_KINDS: Final = ("wechatpay", "alipay", "stripe", "marketplace", "agent", "generic")


def open_statement(
    kind: str,
    stream: IO[bytes],
    *,
    account: str | None = None,
    mapping: ColumnMapping | None = None,
    encoding: str | None = None,
) -> Statement:
    """Read a statement file's header and return it ready to stream its lines in batches.

    `stream` is a binary file object, read once front to back (a zip or an XLSX
    that is not seekable is spooled to a temporary file). `account` is the
    merchant id a provider's file must be for (WeChat Pay 商户号, Alipay 账号),
    or names the store (marketplace) or the agent (agent) the file comes from.
    `encoding` is the marketplace export's ("gbk", "utf-8"; None detects);
    `mapping` is required for "generic".
    """
    if kind == "wechatpay":
        return WeChatPayBill(stream, account=account)
    if kind == "alipay":
        return AlipayDetail(stream, account=account)
    if kind == "stripe":
        return stripe.read(stream)
    if kind == "marketplace":
        return marketplace.read(stream, store=account, encoding=encoding)
    if kind == "agent":
        return agent.read(stream, agent=account)
    if kind == "generic":
        if mapping is None:
            raise StatementRejected("a generic statement is read through a column mapping: none was given")
        return generic.read(stream, mapping)
    raise StatementRejected(f"unknown statement kind {kind!r}; known: {', '.join(STATEMENT_KINDS)}")
