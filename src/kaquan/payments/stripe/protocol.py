"""Stripe's wire protocol from both sides, as pure functions: no I/O, no clock of their own.

Merchant side: the Checkout Session a payment opens (its parameters, the
expiry Stripe accepts), amounts between kaquan's minor units and Stripe's,
reading a webhook's `Stripe-Signature` timestamp. Provider side (the
simulator): signing webhooks, reading form bodies in Stripe's bracket
notation, Stripe's error bodies, the balance-transactions CSV export.

The merchant's requests themselves are encoded and sent by the `stripe`
library (see `gateway.py`); the signature's HMAC is checked by the library's
`WebhookSignature`, and freshness here, against kaquan's clock.
"""

import csv
import hashlib
import hmac
import io
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from kaquan.kit.errors import BadInput
from kaquan.kit.money import Money
from kaquan.payments.errors import InvalidSignature, StaleCallback

SIGNATURE_HEADER = "stripe-signature"
TOLERANCE_S = 300  # Stripe's libraries' default: a webhook signed longer ago than this is a replay
SIGNATURE_SCHEME = "v1"

# Stripe requires a Checkout Session's `expires_at` 30 minutes to 24 hours after its creation.
SESSION_MIN_LIFETIME = timedelta(minutes=30)
SESSION_MAX_LIFETIME = timedelta(hours=24)
# Stripe measures from when it receives the request: a little margin keeps a clamped expiry inside its window.
_EXPIRY_MARGIN = timedelta(minutes=1)

# Stripe's amount unit per currency (docs "Supported currencies": zero-decimal and three-decimal currencies);
# every other currency is in hundredths.
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

BALANCE_CSV_COLUMNS = (
    "id",
    "Type",
    "Source",
    "Amount",
    "Fee",
    "Net",
    "Currency",
    "Created (UTC)",
    "Available On (UTC)",
    "Description",
    "Customer Facing Amount",
    "Customer Facing Currency",
    "payment_token (metadata)",
)


class CurrencyNotSupported(BadInput):
    """kaquan cannot book this currency, or Stripe's amount cannot be expressed exactly in kaquan's minor units."""

    code = "currency_not_supported"


# --- amounts -----------------------------------------------------------------------------------------


def stripe_exponent(currency: str) -> int:
    """How many decimal digits Stripe's integer `amount` carries for `currency` (ISO code, any case)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def kaquan_exponent(currency: str) -> int:
    """The decimal digits of kaquan's minor unit for `currency`, read from kaquan's own money rules."""
    try:
        shown = Money(0, currency.upper()).format()  # "USD 0.00", "JPY 0": the one place kaquan defines its units
    except BadInput:
        raise CurrencyNotSupported(f"kaquan does not book {currency!r}", currency=currency) from None
    _, _, fraction = shown.partition(".")
    return len(fraction)


def to_stripe_amount(amount_minor: int, currency: str) -> int:
    """kaquan's minor units → Stripe's `amount` (equal for USD cents and JPY yen; scaled where the units differ)."""
    shift = stripe_exponent(currency) - kaquan_exponent(currency)
    if shift >= 0:
        return amount_minor * _power_of_ten(shift)
    whole, rest = divmod(amount_minor, _power_of_ten(-shift))
    if rest:
        raise CurrencyNotSupported(f"{amount_minor} minor units of {currency} have no exact Stripe amount")
    return whole


def from_stripe_amount(amount: int, currency: str) -> int:
    """Stripe's `amount` → kaquan's minor units, exactly or not at all."""
    shift = kaquan_exponent(currency) - stripe_exponent(currency)
    if shift >= 0:
        return amount * _power_of_ten(shift)
    whole, rest = divmod(amount, _power_of_ten(-shift))
    if rest:
        raise CurrencyNotSupported(f"Stripe amount {amount} {currency} has no exact kaquan amount")
    return whole


def _power_of_ten(digits: int) -> int:
    return (1, 10, 100, 1000)[digits]  # exponents are 0, 2 or 3 on both sides


def format_amount(amount: int, currency: str) -> str:
    """A Stripe amount as the decimal text of its exports and pay page ("19.90", "-5.00", "1000" for JPY)."""
    digits = stripe_exponent(currency)
    if digits == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}"


# --- merchant side: the Checkout Session ---------------------------------------------------------------


def session_expiry(wanted: datetime, now: datetime) -> tuple[int, str]:
    """The `expires_at` Stripe accepts for a trade the order wants payable until `wanted`, and why it differs.

    An order holds its codes for minutes; Stripe keeps a session at least 30
    minutes. The longer window is safe because kaquan closes (expires) the
    session when the hold ends, and a payment that still slips in is a paid
    notification for a closed order, which the service refunds.
    """
    earliest = now + SESSION_MIN_LIFETIME + _EXPIRY_MARGIN
    latest = now + SESSION_MAX_LIFETIME - _EXPIRY_MARGIN
    if wanted < earliest:
        return int(earliest.timestamp()), "raised to Stripe's 30-minute minimum; kaquan expires it when the hold ends"
    if wanted > latest:
        return int(latest.timestamp()), "lowered to Stripe's 24-hour maximum"
    return int(wanted.timestamp()), ""


def checkout_session_params(
    *,
    token: str,
    order_number: str,
    subject: str,
    amount_minor: int,
    currency: str,
    expires_at: int,
    return_url: str,
) -> dict[str, Any]:
    """The parameters of `POST /v1/checkout/sessions` for one kaquan payment (mode payment, one line, card).

    The payment token rides as `client_reference_id` and as metadata on both the
    session and its PaymentIntent, so a query after a restart finds the trade
    from the token alone (list sessions, or search PaymentIntents by metadata).
    """
    metadata = {"payment_token": token, "order_number": order_number}
    return {
        "mode": "payment",
        "client_reference_id": token,
        "line_items": [
            {
                "price_data": {
                    "currency": currency.lower(),
                    "unit_amount": to_stripe_amount(amount_minor, currency),
                    "product_data": {"name": subject},
                },
                "quantity": 1,
            }
        ],
        "payment_method_types": ["card"],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata, "description": subject},
        "success_url": return_url,
        "cancel_url": return_url,
        "expires_at": expires_at,
    }


def payment_token_search(token: str) -> str:
    """The Search API query finding the PaymentIntent of a payment token."""
    return f"metadata['payment_token']:'{_search_quoted(token)}'"


def _search_quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# --- webhooks: signing (provider side) and the timestamp (merchant side) --------------------------------


def webhook_signature(secret: str, payload: bytes, timestamp: int) -> str:
    """Stripe's v1 signature: hex HMAC-SHA256 under the endpoint's `whsec_` secret of "<timestamp>.<payload>"."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], payload: bytes, timestamp: int) -> str:
    """The `Stripe-Signature` header: one v1 per active secret (two while an endpoint's secret is rolled)."""
    signatures = ",".join(f"{SIGNATURE_SCHEME}={webhook_signature(secret, payload, timestamp)}" for secret in secrets)
    return f"t={timestamp},{signatures}"


def signature_timestamp(header: str) -> int:
    """The `t=` of a `Stripe-Signature` header (the HMAC covers it, so check the HMAC first)."""
    stamps = [value for key, _, value in (part.partition("=") for part in header.split(",")) if key.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit():
        raise InvalidSignature("the Stripe-Signature header has no single timestamp")
    return int(stamps[0])


def check_fresh(timestamp: int, now: datetime, tolerance_s: int = TOLERANCE_S) -> None:
    """Refuse a webhook signed more than `tolerance_s` away from now: a replay, or a clock far off."""
    age = now.timestamp() - timestamp
    if abs(age) > tolerance_s:
        raise StaleCallback(
            "the webhook's signature timestamp is outside the tolerance", age_s=int(age), tolerance_s=tolerance_s
        )


# --- provider side: form bodies, errors, exports ----------------------------------------------------------


def decode_form(body: str) -> dict[str, Any]:
    """A form body in Stripe's bracket notation as nested data: `a[b][0][c]=1` → {"a": {"b": [{"c": "1"}]}}.

    Objects whose keys are all indices become lists in index order; `k[]=v`
    appends. Values stay strings, as on the wire.
    """
    root: dict[str, Any] = {}
    for name, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        path = _key_path(name)
        node = root
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"parameter {name!r} nests under a plain value")
            node = child
        last = path[-1]
        if last == "":
            node[str(sum(1 for key in node if key.isdigit()))] = value
        elif isinstance(node.get(last), dict):
            raise ValueError(f"parameter {name!r} is both a value and an object")
        else:
            node[last] = value
    return {key: _lists(value) for key, value in root.items()}


def _key_path(name: str) -> list[str]:
    head, bracket, rest = name.partition("[")
    if not bracket:
        return [name]
    if not rest.endswith("]"):
        raise ValueError(f"parameter {name!r} is not in bracket notation")
    return [head, *rest[:-1].split("][")]


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def encode_form(params: Mapping[str, Any]) -> str:
    """Nested data in Stripe's bracket notation (the inverse of `decode_form`, brackets left readable)."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}[{key}]" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            for index, inner in enumerate(value):
                walk(f"{prefix}[{index}]", inner)
        elif isinstance(value, bool):
            pairs.append((prefix, "true" if value else "false"))
        elif value is not None:
            pairs.append((prefix, str(value)))

    walk("", params)
    return urlencode(pairs).replace("%5B", "[").replace("%5D", "]")


def error_body(kind: str, message: str, *, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """Stripe's error shape: {"error": {"type": "invalid_request_error", "code": …, "message": …, "param": …}}."""
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    return {"error": error}


def balance_csv(transactions: Iterable[Mapping[str, Any]]) -> bytes:
    """Balance transactions (API objects, `source` expanded or an id) as Stripe's balance history CSV export."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BALANCE_CSV_COLUMNS)
    for txn in transactions:
        currency = str(txn["currency"])
        source = txn.get("source")
        source_id = source.get("id") if isinstance(source, Mapping) else source
        metadata = source.get("metadata") if isinstance(source, Mapping) else None
        token = metadata.get("payment_token", "") if isinstance(metadata, Mapping) else ""
        writer.writerow(
            (
                txn["id"],
                txn["type"],
                source_id or "",
                format_amount(int(txn["amount"]), currency),
                format_amount(int(txn["fee"]), currency),
                format_amount(int(txn["net"]), currency),
                currency.lower(),
                _csv_time(int(txn["created"])),
                _csv_time(int(txn["available_on"])),
                txn.get("description") or "",
                format_amount(int(txn["amount"]), currency),
                currency.lower(),
                token,
            )
        )
    return out.getvalue().encode()


def _csv_time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M")
