"""The merchant account each gateway is configured with, which its statements must name; a file's digest.

WeChat Pay's bill prints the merchant id (商户号) on every row; Alipay's
业务明细 names the account (the 2088… PID) in its preamble. A gateway that is
not configured expects nothing, and any account's file is taken.
"""

import hashlib
from pathlib import Path

from kaquan.payments.alipay.plugin import AlipaySettings
from kaquan.payments.wechatpay.plugin import WechatPaySettings


def configured_account(source: str) -> str | None:
    if source == "wechatpay":
        return WechatPaySettings().mchid or None
    if source == "alipay":
        return AlipaySettings().seller_id or None
    return None


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks: the same file imported twice is known by it."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
