"""WeChat Pay API v3 on the wire: signatures both ways, the resource cipher, amounts and the bill format."""

import base64
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tests.support.wechatpay import FIXED_KEY_PEM, platform_certificate, session_keys, stranger_keys

from kaquan.payments.wechatpay import protocol

KEY = protocol.load_private_key(FIXED_KEY_PEM)
APIV3_KEY = b"0123456789abcdef0123456789abcdef"

# For the fixed key: SHA256withRSA (PKCS#1 v1.5, deterministic) over WeChat Pay's documented example request
# "GET /v3/certificates" at 1554208460 with nonce 593BEC0C930BF1AFEB40B4A08C8FB242 and no body.
EXPECTED_SIGNATURE = (
    "PlKZwv02zuXSZNuFZ4oSglYkO61qDFSW2xRpFwUS7zGYljnRUEZORNlVM1xVw7o9LARCwQdjzbKWaHcsQm0Gu2NifuYtjkdhUQ8coU4wrHzfu4Ps"
    "WsXq2EFYiF6tz1o5aKR3do8KqNZMQQVgR2F33uYmeGJGHi+qe3pzBMBt1BhYP5Ib/yfO5ABQ0O2wds0Z7rJnk6XnBcufdQMlcvsKgWCE19fKWl2I"
    "fPJo6Xo3qOXRbJkOPsk8rPUN5afyqFwLw3Aj5uuMOgZ/xyZhbKthUsOSaeR60ppK+CYQUCHrDZ4f4RTNLoq2HW1i3x4PHVhurqMtYrQGDdq9RZDZ"
    "J+4lMQ=="
)


def test_the_request_message_is_method_url_timestamp_nonce_body_each_ending_in_a_newline() -> None:
    message = protocol.request_message("post", "/v3/pay/transactions/native?x=1", "1554208460", "N0NCE", b'{"a":1}')
    assert message == b'POST\n/v3/pay/transactions/native?x=1\n1554208460\nN0NCE\n{"a":1}\n'


def test_a_fixed_key_signs_the_documented_request_to_the_independently_computed_signature() -> None:
    message = b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
    independent = base64.b64encode(KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    auth = protocol.authorize(
        KEY,
        mchid="1900009191",
        serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
        method="GET",
        url="/v3/certificates",
        body=b"",
        timestamp=1554208460,
        nonce="593BEC0C930BF1AFEB40B4A08C8FB242",
    )
    assert auth.signature == independent == EXPECTED_SIGNATURE
    assert auth.header() == (
        'WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
        f'signature="{EXPECTED_SIGNATURE}",timestamp="1554208460",'
        'serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"'
    )


def test_an_authorization_header_reads_back_to_what_was_signed() -> None:
    auth = protocol.authorize(
        KEY, mchid="1900009191", serial_no="AB12", method="GET", url="/v3/x", body=b"", timestamp=1, nonce="N"
    )
    assert protocol.parse_authorization(auth.header()) == auth


@pytest.mark.parametrize(
    "header",
    [
        "",
        'WECHATPAY2-SHA256-RSA4096 mchid="1",nonce_str="n",signature="s",timestamp="1",serial_no="x"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="1",serial_no="x"',
    ],
)
def test_an_authorization_header_of_another_scheme_or_missing_a_part_is_refused(header: str) -> None:
    with pytest.raises(ValueError):
        protocol.parse_authorization(header)


def test_a_platform_signature_verifies_with_its_public_key_and_fails_on_one_changed_byte() -> None:
    platform = session_keys().platform_key
    keys = {"PUB_KEY_ID_0114232134912410000000000000": platform.public_key()}
    body = b'{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}'
    signed = protocol.platform_sign(platform, "PUB_KEY_ID_0114232134912410000000000000", body, timestamp=1, nonce="n")
    assert protocol.platform_verify(keys, signed, body)
    assert not protocol.platform_verify(keys, signed, body.replace(b"p4l", b"p5l"))
    assert not protocol.platform_verify(keys, signed, body + b" ")


def test_a_platform_signature_by_another_key_or_naming_an_unknown_serial_fails() -> None:
    body = b"{}"
    ours = {"PUB_KEY_ID_1": session_keys().platform_key.public_key()}
    forged = protocol.platform_sign(stranger_keys().platform_key, "PUB_KEY_ID_1", body, timestamp=1, nonce="n")
    unknown = protocol.platform_sign(session_keys().platform_key, "PUB_KEY_ID_2", body, timestamp=1, nonce="n")
    assert not protocol.platform_verify(ours, forged, body)
    assert not protocol.platform_verify(ours, unknown, body)


def test_the_platform_signature_headers_are_read_in_any_case_and_all_four_are_needed() -> None:
    signed = protocol.PlatformSignature("1", "n", "s", "PUB_KEY_ID_1")
    lower = {name.lower(): value for name, value in signed.headers().items()}
    assert protocol.read_platform_signature(lower) == signed
    for missing in ("wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial"):
        assert protocol.read_platform_signature({k: v for k, v in lower.items() if k != missing}) is None
    assert protocol.read_platform_signature({**lower, "wechatpay-signature-type": "WECHATPAY2-SM2-WITH-SM3"}) is None


def test_the_jsapi_pay_sign_is_over_appid_timestamp_nonce_package() -> None:
    message = protocol.jsapi_message(
        "wx8888888888888888", "1414561699", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "prepay_id=wx1"
    )
    assert message == b"wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx1\n"


def test_a_resource_decrypts_to_what_aes_gcm_sealed_with_the_type_as_associated_data() -> None:
    plaintext = b'{"out_trade_no":"1217752501201407033233368018"}'
    resource = {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": "HxayICOjc35uR5+ngInMPoMA9ItNMwoYB1bIbiN7Ksc888ImS7/gyr+VweAknkXsgLkk9vV+ujGGVguGowoF",
        "associated_data": "transaction",
        "nonce": "fedcba987654",
        "original_type": "transaction",
    }
    assert protocol.decrypt_resource(APIV3_KEY, resource) == plaintext
    sealed = protocol.encrypt_resource(APIV3_KEY, plaintext, original_type="transaction", nonce="fedcba987654")
    assert sealed == resource
    independent = AESGCM(APIV3_KEY).decrypt(b"fedcba987654", base64.b64decode(sealed["ciphertext"]), b"transaction")
    assert independent == plaintext


def test_a_resource_under_another_key_or_with_a_changed_byte_or_associated_data_does_not_decrypt() -> None:
    sealed = protocol.encrypt_resource(APIV3_KEY, b"{}", original_type="transaction", nonce="fedcba987654")
    raw = bytearray(base64.b64decode(sealed["ciphertext"]))
    raw[0] ^= 1
    with pytest.raises(InvalidTag):
        protocol.decrypt_resource(b"f" * 32, sealed)
    with pytest.raises(InvalidTag):
        protocol.decrypt_resource(APIV3_KEY, {**sealed, "ciphertext": base64.b64encode(bytes(raw)).decode()})
    with pytest.raises(InvalidTag):
        protocol.decrypt_resource(APIV3_KEY, {**sealed, "associated_data": "refund"})
    with pytest.raises(ValueError):
        protocol.decrypt_resource(APIV3_KEY, {**sealed, "algorithm": "AEAD_SM4_GCM"})


@pytest.mark.parametrize(
    ("minor", "text"), [(1990, "19.90"), (1, "0.01"), (0, "0.00"), (-6, "-0.06"), (100000, "1000.00")]
)
def test_fen_and_yuan_convert_exactly_both_ways(minor: int, text: str) -> None:
    assert protocol.yuan(minor) == text
    assert protocol.fen(text) == minor


@pytest.mark.parametrize("text", ["19.9", "19", "19.901", "1e3", "¥19.90", ""])
def test_a_yuan_amount_without_exactly_two_decimals_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        protocol.fen(text)


def test_fees_round_half_up_to_the_fen_and_rates_print_as_percent() -> None:
    assert protocol.fee_of(1990, 60) == 12  # 11.94 fen
    assert protocol.fee_of(1250, 60) == 8  # 7.5 fen rounds up
    assert protocol.fee_of(-990, 60) == -6
    assert protocol.fee_rate(60) == "0.60%"
    assert protocol.fee_rate(38) == "0.38%"


def test_times_are_beijing_time_with_the_offset() -> None:
    assert protocol.rfc3339(datetime(2026, 12, 5, 12, 57, 17, tzinfo=UTC)) == "2026-12-05T20:57:17+08:00"
    assert protocol.parse_rfc3339("2026-12-05T20:57:17+08:00") == datetime(2026, 12, 5, 12, 57, 17, tzinfo=UTC)


def _line(**changes: object) -> protocol.BillLine:
    line = protocol.BillLine(
        traded_at=datetime(2026, 12, 5, 2, 0, 1, tzinfo=UTC),
        appid="wxd678efh567hg6787",
        mchid="1900000109",
        transaction_id="4200000001202612050000000001",
        out_trade_no="T3kq8mXr9_Lp-2sVb7Nc4dEf",
        openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        trade_type="NATIVE",
        trade_state="SUCCESS",
        settlement_minor=1990,
        description="腾讯视频VIP月卡, x1",
        attach="KQ1",
        fee_minor=12,
        fee_rate_bp=60,
        order_minor=1990,
    )
    return protocol.BillLine(**{**line.__dict__, **changes})


def test_a_bill_is_utf8_with_bom_backticked_values_and_a_totals_row() -> None:
    refund = _line(
        trade_state="REFUND",
        settlement_minor=0,
        order_minor=0,
        fee_minor=-6,
        refund_id="50000000001",
        out_refund_no="R1",
        refund_minor=990,
        refund_requested_minor=990,
        refund_type="ORIGINAL",
        refund_status="SUCCESS",
    )
    data = protocol.render_bill([_line(), refund])
    assert data.startswith("\ufeff交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,".encode())
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[1].startswith(
        "`2026-12-05 10:00:01,`wxd678efh567hg6787,`1900000109,`0,`,`4200000001202612050000000001,"
    )
    assert ',`NATIVE,`SUCCESS,`OTHERS,`CNY,`19.90,`0.00,`0,`0,`0.00,`0.00,`,`,"`腾讯视频VIP月卡, x1",`KQ1,' in lines[1]
    assert lines[1].endswith(",`0.12,`0.60%,`19.90,`0.00,`")
    assert lines[3] == "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    assert lines[4] == "`2,`19.90,`9.90,`0.00,`0.06,`19.90,`9.90"
    bill = protocol.read_bill(data)
    assert [row["交易状态"] for row in bill.rows] == ["SUCCESS", "REFUND"]
    assert bill.rows[0]["商品名称"] == "腾讯视频VIP月卡, x1"
    assert protocol.fen(bill.rows[1]["退款金额"]) == 990
    assert bill.totals["总交易单数"] == "2"


def test_reading_a_bill_refuses_anything_that_is_not_one() -> None:
    good = protocol.render_bill([_line()])
    with pytest.raises(ValueError, match="header"):
        protocol.read_bill(b"a,b,c\r\n")
    with pytest.raises(ValueError, match="totals"):
        protocol.read_bill(good.split("总交易单数".encode())[0])
    with pytest.raises(ValueError, match="shape"):
        protocol.read_bill(good.replace(b"`NATIVE", b"NATIVE"))


def test_a_certificate_or_a_bare_public_key_both_give_the_platform_key_and_a_certificate_names_its_serial() -> None:
    platform = session_keys().platform_key
    numbers = platform.public_key().public_numbers()
    certificate = platform_certificate(platform, serial=0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1)
    assert protocol.load_public_key(certificate).public_numbers() == numbers
    assert protocol.certificate_serial(certificate) == "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    assert protocol.load_public_key(protocol.public_pem(platform.public_key())).public_numbers() == numbers
    assert protocol.certificate_serial(protocol.public_pem(platform.public_key())) is None
