"""Stripe's wire protocol: webhook signatures, amounts in Stripe's units, bracket-notation forms, the CSV export."""

from datetime import UTC, datetime, timedelta

import pytest
import stripe
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from kaquan.payments.errors import InvalidSignature, StaleCallback
from kaquan.payments.stripe import protocol
from kaquan.payments.stripe.protocol import CurrencyNotSupported

PAYLOAD = b'{"id":"evt_1","object":"event"}'
SECRET = "whsec_test_secret"
STAMP = 1_700_000_000


def independent_hmac(secret: str, message: bytes) -> str:
    mac = HMAC(secret.encode(), hashes.SHA256())
    mac.update(message)
    return mac.finalize().hex()


def test_a_webhook_signature_is_hmac_sha256_of_timestamp_dot_payload_under_the_endpoint_secret() -> None:
    expected = independent_hmac(SECRET, b"1700000000." + PAYLOAD)
    assert expected == "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"
    assert protocol.webhook_signature(SECRET, PAYLOAD, STAMP) == expected
    assert protocol.signature_header([SECRET], PAYLOAD, STAMP) == f"t={STAMP},v1={expected}"


def test_stripes_own_library_accepts_the_simulators_signature_and_refuses_a_tampered_byte() -> None:
    header = protocol.signature_header([SECRET], PAYLOAD, STAMP)
    assert stripe.WebhookSignature.verify_header(PAYLOAD, header, SECRET, tolerance=None)
    tampered = PAYLOAD.replace(b"evt_1", b"evt_2")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(tampered, header, SECRET, tolerance=None)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(PAYLOAD, header, "whsec_another", tolerance=None)


def test_while_a_secret_is_rolled_the_header_carries_one_v1_per_secret_and_either_verifies() -> None:
    header = protocol.signature_header(["whsec_old", "whsec_new"], PAYLOAD, STAMP)
    assert header.count("v1=") == 2
    for secret in ("whsec_old", "whsec_new"):
        assert stripe.WebhookSignature.verify_header(PAYLOAD, header, secret, tolerance=None)


def test_the_signed_timestamp_is_read_from_the_header_and_a_header_without_one_is_refused() -> None:
    assert protocol.signature_timestamp(f"t={STAMP},v1=abc,v0=def") == STAMP
    for broken in ("v1=abc", "t=soon,v1=abc", f"t={STAMP},t={STAMP},v1=abc", ""):
        with pytest.raises(InvalidSignature):
            protocol.signature_timestamp(broken)


def test_a_webhook_is_fresh_within_300_seconds_either_way_and_stale_beyond() -> None:
    signed_at = datetime.fromtimestamp(STAMP, UTC)
    for skew in (0, 300, -300):
        protocol.check_fresh(STAMP, signed_at + timedelta(seconds=skew))
    for skew in (301, -301, 86_400):
        with pytest.raises(StaleCallback):
            protocol.check_fresh(STAMP, signed_at + timedelta(seconds=skew))


def test_stripe_amounts_are_cents_for_usd_and_whole_yen_or_won_for_zero_decimal_currencies() -> None:
    assert protocol.to_stripe_amount(1990, "USD") == 1990
    assert protocol.to_stripe_amount(1990, "CNY") == 1990
    assert protocol.to_stripe_amount(1000, "JPY") == 1000  # ¥1000: kaquan's minor unit of JPY is the yen too
    assert protocol.to_stripe_amount(5000, "KRW") == 5000
    assert protocol.from_stripe_amount(1000, "jpy") == 1000
    assert protocol.from_stripe_amount(1990, "usd") == 1990
    assert [protocol.stripe_exponent(c) for c in ("usd", "JPY", "krw", "KWD")] == [2, 0, 0, 3]
    assert [protocol.kaquan_exponent(c) for c in ("USD", "jpy")] == [2, 0]


def test_a_currency_kaquan_does_not_book_is_refused_both_ways() -> None:
    for currency in ("GBP", "xyz", "KWD"):
        with pytest.raises(CurrencyNotSupported):
            protocol.to_stripe_amount(100, currency)
        with pytest.raises(CurrencyNotSupported):
            protocol.from_stripe_amount(100, currency)


def test_amounts_are_shown_as_exact_decimals_in_stripes_unit() -> None:
    assert protocol.format_amount(1990, "usd") == "19.90"
    assert protocol.format_amount(-500, "usd") == "-5.00"
    assert protocol.format_amount(5, "usd") == "0.05"
    assert protocol.format_amount(1000, "jpy") == "1000"
    assert protocol.format_amount(1230, "kwd") == "1.230"


def test_a_hold_shorter_than_stripes_30_minutes_is_raised_and_one_past_24_hours_lowered() -> None:
    now = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
    short, why = protocol.session_expiry(now + timedelta(minutes=15), now)
    assert short == int((now + timedelta(minutes=31)).timestamp())
    assert "30-minute" in why
    inside, why = protocol.session_expiry(now + timedelta(hours=2), now)
    assert (inside, why) == (int((now + timedelta(hours=2)).timestamp()), "")
    long, why = protocol.session_expiry(now + timedelta(days=3), now)
    assert long == int((now + timedelta(hours=23, minutes=59)).timestamp())
    assert "24-hour" in why


def test_the_checkout_session_carries_the_token_as_reference_and_metadata_in_stripes_units() -> None:
    params = protocol.checkout_session_params(
        token="tok",
        order_number="O-1",
        subject="点卡",
        amount_minor=1000,
        currency="JPY",
        expires_at=STAMP,
        return_url="http://shop.test/orders/O-1",
    )
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == "tok"
    assert params["line_items"] == [
        {"price_data": {"currency": "jpy", "unit_amount": 1000, "product_data": {"name": "点卡"}}, "quantity": 1}
    ]
    assert params["metadata"]["payment_token"] == params["payment_intent_data"]["metadata"]["payment_token"] == "tok"
    assert params["expires_at"] == STAMP


def test_bracket_notation_decodes_to_nested_objects_and_lists() -> None:
    body = (
        "mode=payment&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=1990"
        "&line_items[0][quantity]=1&line_items[1][quantity]=2&metadata[payment_token]=tok"
        "&expand[]=data.source&expand[]=data.customer&success_url=http%3A%2F%2Fshop.test%2Fo%3Fa%3D1%26b%3D2"
    )
    assert protocol.decode_form(body) == {
        "mode": "payment",
        "line_items": [{"price_data": {"currency": "usd", "unit_amount": "1990"}, "quantity": "1"}, {"quantity": "2"}],
        "metadata": {"payment_token": "tok"},
        "expand": ["data.source", "data.customer"],
        "success_url": "http://shop.test/o?a=1&b=2",
    }


def test_encoding_and_decoding_a_form_round_trip() -> None:
    params = {"a": {"b": [{"c": "1"}, {"c": "2"}]}, "d": "x y&z", "e": True, "f": None}
    assert protocol.decode_form(protocol.encode_form(params)) == {
        "a": {"b": [{"c": "1"}, {"c": "2"}]},
        "d": "x y&z",
        "e": "true",
    }


def test_a_form_that_makes_a_value_an_object_too_is_refused() -> None:
    with pytest.raises(ValueError):
        protocol.decode_form("metadata=1&metadata[a]=2")


def test_stripe_errors_have_a_type_a_message_and_where_known_a_code_and_param() -> None:
    assert protocol.error_body("invalid_request_error", "too much", code="amount_too_large", param="amount") == {
        "error": {"type": "invalid_request_error", "message": "too much", "code": "amount_too_large", "param": "amount"}
    }


def test_the_balance_export_has_stripes_columns_and_decimal_amounts() -> None:
    rows = [
        {
            "id": "txn_1",
            "type": "charge",
            "source": {"id": "ch_1", "metadata": {"payment_token": "tok"}},
            "amount": 1990,
            "fee": 88,
            "net": 1902,
            "currency": "usd",
            "created": STAMP,
            "available_on": STAMP + 172_800,
            "description": "点卡",
        }
    ]
    lines = protocol.balance_csv(rows).decode().splitlines()
    assert lines[0].split(",")[:10] == [
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
    ]
    assert lines[1] == "txn_1,charge,ch_1,19.90,0.88,19.02,usd,2023-11-14 22:13,2023-11-16 22:13,点卡,19.90,usd,tok"
