"""A column mapping finance saves once per source, so that any CSV or XLSX statement reads into kaquan's terms.

The mapping is plain data (JSON): which column holds each field of a
`StatementLine`, how amounts and times are written, the encoding and where
the header row is. `from_json` refuses anything it does not understand
(an unknown key, a missing column name, an unknown kind or time zone) with a
`MappingInvalid` naming the key, so a bad mapping fails when it is saved, not
on the first file.
"""

import codecs
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kaquan.kit.errors import DomainError
from kaquan.statements.lines import LineKind
from kaquan.statements.reading import currency_digits

AmountUnit = Literal["yuan", "fen"]
KINDS: Final = frozenset(get_args(LineKind))
ISO: Final = "iso"


class MappingInvalid(DomainError):
    """A column mapping that cannot read any file: an unknown key, a missing column, a value out of range."""

    status = 422
    code = "statement_mapping_invalid"

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(f"{message} (key {key})")
        self.details = {"key": key}


@dataclass(frozen=True)
class ColumnMapping:
    """Which column holds what, and how the file writes it. Column names are the header row's, exactly."""

    name: str  # the source's short name: lines come from "generic:<name>"
    identity: str  # the counterparty's id for the row: stable across downloads
    merchant_ref: str  # kaquan's reference (payment token, order number)
    amount: str
    occurred_at: str
    fee: str | None = None
    kind: str | None = None  # a column whose values `kinds` maps to a line kind
    kinds: dict[str, LineKind] = field(default_factory=dict)
    default_kind: LineKind = "payment"  # when there is no kind column
    negative_is_refund: bool = True  # without a kind column, a negative amount is a refund (else it is refused)
    currency: str | None = None  # a column of ISO codes; else every row is `default_currency`
    default_currency: str = "CNY"
    counterparty_ref: str | None = None  # else the identity
    refund_ref: str | None = None
    description: str | None = None
    amount_unit: AmountUnit = "yuan"  # "yuan": major units ("12.34"); "fen": integer minor units ("1234")
    date_format: str = "%Y-%m-%d %H:%M:%S"  # a strptime pattern, or "iso" for ISO 8601
    time_zone: str = "Asia/Shanghai"  # for times written without an offset
    encoding: str = "utf-8"  # of a CSV: "utf-8" (a BOM is allowed), "gbk", …, or "auto" (UTF-8 or GBK)
    header_row: int = 1  # the line (CSV) or sheet row (XLSX) of the header
    sheet: str | None = None  # the XLSX sheet; else the first
    # What reconciliation matches the lines with: a gateway's payments ("wechatpay", …), "marketplace:<store>"
    # or "agent:<code>"; null: kaquan's payments and refunds through every gateway (docs/reconciliation.md).
    channel: str | None = None

    def __post_init__(self) -> None:
        for key in ("name", "identity", "merchant_ref", "amount", "occurred_at"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key).strip():
                raise MappingInvalid("a column name is required", key=key)
        for key in ("fee", "kind", "currency", "counterparty_ref", "refund_ref", "description", "sheet"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise MappingInvalid("a column name is a non-empty text, or null", key=key)
        if self.channel is not None and (
            not isinstance(self.channel, str) or not self.channel.strip() or len(self.channel) > 64
        ):
            raise MappingInvalid("a gateway, marketplace:<store> or agent:<code>, or null", key="channel")
        if not isinstance(self.kinds, dict):
            raise MappingInvalid("kinds maps a column value to a kind", key="kinds")
        for value, kind in self.kinds.items():
            if kind not in KINDS:
                raise MappingInvalid(f"{value!r} maps to {kind!r}, not one of {', '.join(sorted(KINDS))}", key="kinds")
        if self.kind is not None and not self.kinds:
            raise MappingInvalid("a kind column needs the kinds its values mean", key="kinds")
        if self.default_kind not in KINDS:
            raise MappingInvalid(f"not one of {', '.join(sorted(KINDS))}", key="default_kind")
        if not isinstance(self.negative_is_refund, bool):
            raise MappingInvalid("true or false", key="negative_is_refund")
        if self.amount_unit not in get_args(AmountUnit):
            raise MappingInvalid("yuan or fen", key="amount_unit")
        if not isinstance(self.default_currency, str) or currency_digits(self.default_currency.upper()) is None:
            raise MappingInvalid(f"kaquan does not book {self.default_currency!r}", key="default_currency")
        if not isinstance(self.date_format, str) or (self.date_format != ISO and "%" not in self.date_format):
            raise MappingInvalid('a strptime pattern such as "%Y-%m-%d %H:%M:%S", or "iso"', key="date_format")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise MappingInvalid(f"unknown time zone {self.time_zone!r}", key="time_zone") from None
        if self.encoding != "auto":
            try:
                codecs.lookup(self.encoding)
            except (LookupError, TypeError):
                raise MappingInvalid(f"unknown encoding {self.encoding!r}", key="encoding") from None
        if not isinstance(self.header_row, int) or isinstance(self.header_row, bool) or self.header_row < 1:
            raise MappingInvalid("the header row is a line number, 1 or more", key="header_row")

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ColumnMapping":
        try:
            data: Any = json.loads(text)
        except ValueError as error:
            raise MappingInvalid(f"not JSON: {error}", key="") from None
        if not isinstance(data, dict):
            raise MappingInvalid("a mapping is a JSON object", key="")
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MappingInvalid(f"unknown key {unknown[0]!r}", key=unknown[0])
        missing = [key for key in ("name", "identity", "merchant_ref", "amount", "occurred_at") if key not in data]
        if missing:
            raise MappingInvalid("a column name is required", key=missing[0])
        return cls(**data)

    def columns(self) -> dict[str, str]:
        """Each field read from the file and the column it is read from."""
        named = {
            "identity": self.identity,
            "merchant_ref": self.merchant_ref,
            "amount": self.amount,
            "occurred_at": self.occurred_at,
            "fee": self.fee,
            "kind": self.kind,
            "currency": self.currency,
            "counterparty_ref": self.counterparty_ref,
            "refund_ref": self.refund_ref,
            "description": self.description,
        }
        return {key: column for key, column in named.items() if column is not None}
