"""The merchant account each gateway is configured with, which its statements must name; a file's digest.

WeChat Pay's bill prints the merchant id (商户号) on every row; Alipay's
业务明细 names the account (the 2088… PID) in its preamble. A gateway that is
not configured expects nothing, and any account's file is taken.
"""

import hashlib
from typing import IO

from kaquan.kit.errors import BadInput
from kaquan.payments.alipay.plugin import AlipaySettings
from kaquan.payments.wechatpay.plugin import WechatPaySettings


def configured_account(source: str) -> str | None:
    if source == "wechatpay":
        return WechatPaySettings().mchid or None
    if source == "alipay":
        return AlipaySettings().seller_id or None
    return None


def stream_sha256(stream: IO[bytes], *, max_bytes: int) -> str:
    """The hex SHA-256 of a seekable stream's bytes, read in chunks and rewound: the same file imported twice is
    known by it. A stream longer than `max_bytes` is refused before anything is stored."""
    digest = hashlib.sha256()
    size = 0
    stream.seek(0)
    while chunk := stream.read(1 << 20):
        size += len(chunk)
        if size > max_bytes:
            raise BadInput(f"the file is larger than {max_bytes // 2**20} MiB", max_bytes=max_bytes)
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()
