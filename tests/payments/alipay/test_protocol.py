"""Alipay's wire protocol: signing strings, RSA2 both ways, raw response members, amounts and times."""

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from tests.support.alipay import FIXED_KEY_PEM, key_pair

from kaquan.payments.alipay import protocol
from kaquan.payments.alipay.protocol import ProtocolError


def test_a_request_is_signed_over_its_sorted_non_empty_parameters_with_sha256_rsa() -> None:
    key = protocol.load_private_key(FIXED_KEY_PEM)
    params = protocol.signed_request(
        app_id="2021004100000001",
        method="alipay.trade.query",
        content={"out_trade_no": "KQP0001"},
        key=key,
        at=datetime(2024, 5, 20, 2, 0, tzinfo=UTC),
    )
    signing_string = (
        'app_id=2021004100000001&biz_content={"out_trade_no":"KQP0001"}&charset=utf-8&format=JSON'
        "&method=alipay.trade.query&sign_type=RSA2&timestamp=2024-05-20 10:00:00&version=1.0"
    )
    expected = base64.b64encode(key.sign(signing_string.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    assert params["sign"] == expected
    assert "notify_url" not in params  # empty parameters are neither sent nor signed
    assert protocol.verify_request(params, key.public_key())


def test_chinese_text_is_signed_as_utf8_without_escaping() -> None:
    key = protocol.load_private_key(FIXED_KEY_PEM)
    content = protocol.biz_content({"subject": "腾讯视频VIP月卡 x1"})
    assert content == '{"subject":"腾讯视频VIP月卡 x1"}'
    signature = protocol.sign(f"biz_content={content}", key)
    raw = base64.b64decode(signature)
    key.public_key().verify(raw, f"biz_content={content}".encode(), padding.PKCS1v15(), hashes.SHA256())


def test_a_tampered_parameter_or_signature_byte_fails_verification() -> None:
    key = key_pair("merchant")
    params = protocol.signed_request(
        app_id="2021004100000001",
        method="alipay.trade.refund",
        content={"out_trade_no": "KQP0001", "refund_amount": "5.00"},
        key=key,
        at=datetime(2024, 5, 20, 2, 0, tzinfo=UTC),
    )
    assert protocol.verify_request(params, key.public_key())
    assert not protocol.verify_request(
        {**params, "biz_content": params["biz_content"].replace("5.00", "50.0")}, key.public_key()
    )
    raw = bytearray(base64.b64decode(params["sign"]))
    raw[17] ^= 0x01
    assert not protocol.verify_request({**params, "sign": base64.b64encode(raw).decode()}, key.public_key())
    assert not protocol.verify_request(params, key_pair("stranger").public_key())
    assert not protocol.verify_request({**params, "sign": "not base64!"}, key.public_key())


def test_a_notification_is_signed_without_sign_and_sign_type_and_with_its_empty_values() -> None:
    key = protocol.load_private_key(FIXED_KEY_PEM)
    signed = protocol.sign_notification({"trade_status": "TRADE_SUCCESS", "out_trade_no": "KQP0001", "memo": ""}, key)
    assert signed["sign_type"] == "RSA2"
    expected_string = "memo=&out_trade_no=KQP0001&trade_status=TRADE_SUCCESS"
    assert protocol.notification_signing_string(signed) == expected_string
    key.public_key().verify(
        base64.b64decode(signed["sign"]), expected_string.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert protocol.verify_notification(signed, key.public_key())
    assert not protocol.verify_notification({**signed, "memo": "x"}, key.public_key())
    assert not protocol.verify_notification({**signed, "sign_type": "RSA"}, key.public_key())
    assert not protocol.verify_notification({k: v for k, v in signed.items() if k != "sign"}, key.public_key())


def test_the_response_signature_covers_the_raw_text_of_the_member_with_escaped_slashes() -> None:
    key = key_pair("alipay")
    text = protocol.response_text(
        "alipay.trade.precreate", {"code": "10000", "msg": "Success", "qr_code": "https://qr.alipay.com/bax0"}, key
    )
    assert '"qr_code":"https:\\/\\/qr.alipay.com\\/bax0"' in text
    answer = protocol.read_response(text, "alipay.trade.precreate")
    assert answer.body["qr_code"] == "https://qr.alipay.com/bax0"
    assert answer.sign is not None
    assert protocol.verify(answer.raw, answer.sign, key.public_key())
    reserialized = json.dumps(answer.body, ensure_ascii=False, separators=(",", ":"))
    assert not protocol.verify(reserialized, answer.sign, key.public_key())  # why the raw text is kept


def test_the_raw_member_is_found_whatever_the_spacing_and_member_order() -> None:
    key = key_pair("alipay")
    raw = '{ "code" : "10000", "msg":"Success", "note":"}\\"{ , sign" }'
    text = f' {{ "sign" : "{protocol.sign(raw, key)}" ,\n "alipay_trade_query_response" :  {raw} }} '
    answer = protocol.read_response(text, "alipay.trade.query")
    assert answer.raw == raw
    assert answer.sign is not None and protocol.verify(answer.raw, answer.sign, key.public_key())


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"alipay_trade_query_response":{}', '{"a":1 "b":2}', '{"a":1,"a":2}', '{"a":1} x', '{"other":{}}'],
)
def test_an_unreadable_response_is_refused(text: str) -> None:
    with pytest.raises(ProtocolError):
        protocol.read_response(text, "alipay.trade.query")


def test_a_gateway_error_is_read_from_error_response() -> None:
    answer = protocol.read_response('{"error_response":{"code":"40002","sub_code":"isv.invalid-method"}}', "x.y")
    assert answer.key == "error_response"
    assert answer.sign is None
    assert not answer.ok


@pytest.mark.parametrize(("fen", "yuan"), [(1990, "19.90"), (1, "0.01"), (0, "0.00"), (100_000_000, "1000000.00")])
def test_fen_and_yuan_convert_exactly_both_ways(fen: int, yuan: str) -> None:
    assert protocol.yuan(fen) == yuan
    assert protocol.fen(yuan) == fen


def test_alipay_amounts_with_fewer_decimals_are_read() -> None:
    assert protocol.fen("19.9") == 1990
    assert protocol.fen("20") == 2000


@pytest.mark.parametrize("text", ["", "-1.00", "1.001", "1e3", "0x10", " 1.00", "1,00", "01.00", "NaN", "１.00"])
def test_anything_but_an_amount_in_yuan_is_refused(text: str) -> None:
    with pytest.raises(ProtocolError):
        protocol.fen(text)


def test_times_are_beijing_wall_clock() -> None:
    at = datetime(2024, 5, 20, 16, 30, 5, tzinfo=UTC)
    assert protocol.china_time(at) == "2024-05-21 00:30:05"
    assert protocol.parse_china_time("2024-05-21 00:30:05") == at
    with pytest.raises(ProtocolError):
        protocol.parse_china_time("2024-05-21T00:30:05")
    with pytest.raises(ProtocolError):
        protocol.china_time(datetime(2024, 5, 20))  # noqa: DTZ001 - a naive time is the point


def test_keys_load_from_pem_and_from_the_bare_base64_alipays_console_shows() -> None:
    key = protocol.load_private_key(FIXED_KEY_PEM)
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pkcs1 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    for bare in (pkcs8, pkcs1):
        text = base64.b64encode(bare).decode()
        wrapped = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
        assert protocol.load_private_key(wrapped).private_numbers() == key.private_numbers()
    public_text = protocol.bare_public_key(key.public_key())
    assert "\n" not in public_text and "BEGIN" not in public_text
    assert protocol.load_public_key(public_text).public_numbers() == key.public_key().public_numbers()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert protocol.load_public_key(pem).public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize("text", ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"])
def test_a_broken_key_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        protocol.load_private_key(text)
    assert "AAAA" not in str(raised.value)
