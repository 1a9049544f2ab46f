"""One entry point for every statement format: `open_statement(kind, stream, …)`."""

from typing import IO, Final

from kaquan.statements.alipay import AlipayDetail
from kaquan.statements.lines import Statement, StatementRejected
from kaquan.statements.wechatpay import WeChatPayBill

STATEMENT_KINDS: Final = ("wechatpay", "alipay")


def open_statement(kind: str, stream: IO[bytes], *, account: str | None = None) -> Statement:
    """Read the header of a statement file and return it ready to stream its lines in batches.

    `stream` is a binary file object read once, front to back. `account` is the
    merchant id or account the caller expects: a file for another is rejected.
    """
    if kind == "wechatpay":
        return WeChatPayBill(stream, account=account)
    if kind == "alipay":
        return AlipayDetail(stream, account=account)
    raise StatementRejected(f"unknown statement kind {kind!r}; known: {', '.join(STATEMENT_KINDS)}")
