"""WeChat Pay API v3 on the wire, from both sides: pure functions, no I/O.

The merchant signs every request with its RSA key (SHA256withRSA, PKCS#1 v1.5)
over "METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n" and names the key by its
certificate serial in the `Authorization` header. The platform signs every
answer and notification over "TIMESTAMP\\nNONCE\\nBODY\\n" with its own key,
named by `Wechatpay-Serial` (a platform certificate serial, or a "PUB_KEY_ID_…"
in the newer public-key mode), and encrypts a notification's `resource` with
AEAD_AES_256_GCM under the merchant's APIv3 key. Amounts are integer fen in
the API and yuan strings ("19.90") in bills.
"""

import base64
import csv
import io
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
TOLERANCE_S = 300  # WeChat Pay: a signature's timestamp more than five minutes off is refused
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
APIV3_KEY_BYTES = 32
AEAD_ALGORITHM = "AEAD_AES_256_GCM"
_NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')
_YUAN = re.compile(r"^(-?)(\d+)\.(\d{2})$")


# --- signing messages --------------------------------------------------------


def request_message(method: str, url: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the merchant signs: `url` is the path with its query string, exactly as sent."""
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the platform signs on an answer or a notification."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def jsapi_message(appid: str, timestamp: str, nonce: str, package: str) -> bytes:
    """What the merchant signs for the JSAPI bridge (`paySign`)."""
    return f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode()


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, CryptoInvalidSignature):
        return False
    return True


def new_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


# --- the merchant's Authorization header ------------------------------------------


@dataclass(frozen=True)
class Authorization:
    mchid: str
    serial_no: str
    timestamp: str
    nonce_str: str
    signature: str

    def header(self) -> str:
        return (
            f'{AUTH_SCHEME} mchid="{self.mchid}",nonce_str="{self.nonce_str}",'
            f'signature="{self.signature}",timestamp="{self.timestamp}",serial_no="{self.serial_no}"'
        )


def authorize(
    key: rsa.RSAPrivateKey,
    *,
    mchid: str,
    serial_no: str,
    method: str,
    url: str,
    body: bytes,
    timestamp: int,
    nonce: str,
) -> Authorization:
    signature = rsa_sign(key, request_message(method, url, str(timestamp), nonce, body))
    return Authorization(mchid, serial_no, str(timestamp), nonce, signature)


def parse_authorization(header: str) -> Authorization:
    """Read an `Authorization` header; ValueError when it is not WeChat Pay's scheme or misses a part."""
    scheme, _, params = header.strip().partition(" ")
    if scheme != AUTH_SCHEME:
        raise ValueError("not the WECHATPAY2-SHA256-RSA2048 scheme")
    found = dict(_AUTH_PARAM.findall(params))
    try:
        return Authorization(
            mchid=found["mchid"],
            serial_no=found["serial_no"],
            timestamp=found["timestamp"],
            nonce_str=found["nonce_str"],
            signature=found["signature"],
        )
    except KeyError as missing:
        raise ValueError(f"the Authorization header has no {missing.args[0]}") from None


# --- the platform's signature headers -----------------------------------------------


@dataclass(frozen=True)
class PlatformSignature:
    timestamp: str
    nonce: str
    signature: str
    serial: str

    def headers(self) -> dict[str, str]:
        return {
            "Wechatpay-Timestamp": self.timestamp,
            "Wechatpay-Nonce": self.nonce,
            "Wechatpay-Signature": self.signature,
            "Wechatpay-Serial": self.serial,
            "Wechatpay-Signature-Type": AUTH_SCHEME,
        }


def platform_sign(key: rsa.RSAPrivateKey, serial: str, body: bytes, *, timestamp: int, nonce: str) -> PlatformSignature:
    stamp = str(timestamp)
    return PlatformSignature(stamp, nonce, rsa_sign(key, response_message(stamp, nonce, body)), serial)


def read_platform_signature(headers: dict[str, str]) -> PlatformSignature | None:
    """The four Wechatpay-* headers (any case), or None when one is missing or another scheme is named."""
    lower = {name.lower(): value for name, value in headers.items()}
    if lower.get("wechatpay-signature-type", AUTH_SCHEME) != AUTH_SCHEME:
        return None
    parts = [lower.get(f"wechatpay-{part}") for part in ("timestamp", "nonce", "signature", "serial")]
    if any(not part for part in parts):
        return None
    timestamp, nonce, signature, serial = (str(part) for part in parts)
    return PlatformSignature(timestamp, nonce, signature, serial)


def platform_verify(keys: dict[str, rsa.RSAPublicKey], signed: PlatformSignature, body: bytes) -> bool:
    key = keys.get(signed.serial)
    return key is not None and rsa_verify(key, response_message(signed.timestamp, signed.nonce, body), signed.signature)


# --- notification resources (AEAD_AES_256_GCM under the APIv3 key) ------------------------


def encrypt_resource(apiv3_key: bytes, plaintext: bytes, *, original_type: str, nonce: str) -> dict[str, str]:
    """The `resource` object of a notification, as the platform builds it."""
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, original_type.encode())
    return {
        "original_type": original_type,
        "algorithm": AEAD_ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": original_type,
        "nonce": nonce,
    }


def decrypt_resource(apiv3_key: bytes, resource: dict[str, str]) -> bytes:
    """The plaintext; `InvalidTag` when the key or any byte is wrong, ValueError when the resource is malformed."""
    if resource.get("algorithm") != AEAD_ALGORITHM:
        raise ValueError(f"unknown algorithm {resource.get('algorithm')!r}")
    sealed = base64.b64decode(resource["ciphertext"], validate=True)
    associated = resource.get("associated_data") or ""
    return AESGCM(apiv3_key).decrypt(resource["nonce"].encode(), sealed, associated.encode())


# --- keys -------------------------------------------------------------------


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the merchant key must be an RSA private key")
    return key


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """A platform key from a PEM public key (the 微信支付公钥 mode) or a PEM X.509 platform certificate."""
    key = (
        x509.load_pem_x509_certificate(pem).public_key()
        if b"BEGIN CERTIFICATE" in pem
        else serialization.load_pem_public_key(pem)
    )
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the platform key must be an RSA public key")
    return key


def certificate_serial(pem: bytes) -> str | None:
    """The serial WeChat Pay names a certificate by (upper-case hex), or None for a bare public key."""
    if b"BEGIN CERTIFICATE" not in pem:
        return None
    return f"{x509.load_pem_x509_certificate(pem).serial_number:X}"


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- amounts and times -------------------------------------------------------------


def yuan(minor: int) -> str:
    """Fen as the yuan string of bills, with integers only: 1990 -> "19.90"."""
    sign = "-" if minor < 0 else ""
    whole, fen = divmod(abs(minor), 100)
    return f"{sign}{whole}.{fen:02d}"


def fen(text: str) -> int:
    """A yuan string with exactly two decimals as fen: "19.90" -> 1990; ValueError on anything else."""
    match = _YUAN.match(text.strip())
    if match is None:
        raise ValueError(f"not a yuan amount: {text!r}")
    sign, whole, cents = match.groups()
    value = int(whole) * 100 + int(cents)
    return -value if sign else value


def fee_rate(basis_points: int) -> str:
    """60 -> "0.60%", as bills print the rate."""
    return f"{basis_points // 100}.{basis_points % 100:02d}%"


def fee_of(minor: int, basis_points: int) -> int:
    """The platform's fee in fen, rounded half up (四舍五入) like WeChat Pay's bills."""
    sign = -1 if minor < 0 else 1
    return sign * ((abs(minor) * basis_points + 5000) // 10000)


def rfc3339(moment: datetime) -> str:
    """WeChat Pay's time format: Beijing time with its offset, e.g. 2026-12-05T20:57:17+08:00."""
    return moment.astimezone(BEIJING).isoformat(timespec="seconds")


def parse_rfc3339(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"a WeChat Pay time carries its offset: {text!r}")
    return moment


# --- the trade bill (交易账单) -------------------------------------------------------------

BILL_COLUMNS = (
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
)
SUMMARY_COLUMNS = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)
_BOM = "\ufeff"


@dataclass(frozen=True)
class BillLine:
    """One row of an ALL trade bill: a payment (交易状态 SUCCESS) or a refund (REFUND)."""

    traded_at: datetime
    appid: str
    mchid: str
    transaction_id: str
    out_trade_no: str
    openid: str
    trade_type: str
    trade_state: str
    settlement_minor: int
    description: str
    attach: str
    fee_minor: int
    fee_rate_bp: int
    order_minor: int
    refund_id: str = "0"
    out_refund_no: str = "0"
    refund_minor: int = 0
    refund_requested_minor: int = 0
    refund_type: str = ""
    refund_status: str = ""
    bank_type: str = "OTHERS"
    currency: str = "CNY"

    def values(self) -> tuple[str, ...]:
        return (
            self.traded_at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            self.appid,
            self.mchid,
            "0",
            "",
            self.transaction_id,
            self.out_trade_no,
            self.openid,
            self.trade_type,
            self.trade_state,
            self.bank_type,
            self.currency,
            yuan(self.settlement_minor),
            yuan(0),
            self.refund_id,
            self.out_refund_no,
            yuan(self.refund_minor),
            yuan(0),
            self.refund_type,
            self.refund_status,
            self.description,
            self.attach,
            yuan(self.fee_minor),
            fee_rate(self.fee_rate_bp),
            yuan(self.order_minor),
            yuan(self.refund_requested_minor),
            "",
        )


def render_bill(lines: list[BillLine]) -> bytes:
    """The bill file as WeChat Pay serves it: UTF-8 with BOM, every value behind a backtick, totals at the end."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    out.write(_BOM)
    writer.writerow(BILL_COLUMNS)
    for line in lines:
        writer.writerow(["`" + value for value in line.values()])
    writer.writerow(SUMMARY_COLUMNS)
    totals = (
        str(len(lines)),
        yuan(sum(line.settlement_minor for line in lines)),
        yuan(sum(line.refund_minor for line in lines)),
        yuan(0),
        yuan(sum(line.fee_minor for line in lines)),
        yuan(sum(line.order_minor for line in lines)),
        yuan(sum(line.refund_requested_minor for line in lines)),
    )
    writer.writerow(["`" + value for value in totals])
    return out.getvalue().encode()


@dataclass(frozen=True)
class TradeBill:
    """A bill read back: each row and the totals by column name, backticks removed (amounts still yuan text)."""

    rows: list[dict[str, str]]
    totals: dict[str, str]


def read_bill(data: bytes) -> TradeBill:
    """Read a trade bill; ValueError when it is not one (wrong header, ragged rows, missing totals)."""
    text = data.decode("utf-8").removeprefix(_BOM)
    records = [record for record in csv.reader(io.StringIO(text)) if record]
    if not records or tuple(records[0]) != BILL_COLUMNS:
        raise ValueError("the bill does not start with the trade bill header")
    try:
        summary_at = next(i for i, record in enumerate(records) if tuple(record) == SUMMARY_COLUMNS)
    except StopIteration:
        raise ValueError("the bill has no totals") from None
    if summary_at != len(records) - 2:
        raise ValueError("the totals must close the bill")

    def unticked(record: list[str], width: int) -> list[str]:
        if len(record) != width or not all(value.startswith("`") for value in record):
            raise ValueError("a bill row has the wrong shape")
        return [value[1:] for value in record]

    rows = [dict(zip(BILL_COLUMNS, unticked(r, len(BILL_COLUMNS)), strict=True)) for r in records[1:summary_at]]
    totals = dict(zip(SUMMARY_COLUMNS, unticked(records[-1], len(SUMMARY_COLUMNS)), strict=True))
    return TradeBill(rows, totals)
