"""An audit entry's change in words, in both languages: each kind of change, money as the shop shows it,
statuses and yes/no fields in words, secrets never shown, an unknown field readable by its stored name."""

import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from tests.support.builders import given_sku
from tests.support.console import Console, console_sign_in
from tests.support.downloads import read_csv, read_xlsx
from tests.support.identity import given_user

from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import SkuUpdate
from kaquan.runtime import Runtime
from kaquan.web.console.audit_changes import Change, change_text, changes, is_secret
from kaquan.web.i18n import MESSAGES


def shanghai(moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%d %H:%M} UTC+8"


@pytest.mark.parametrize(
    ("lang", "words"), [("zh", "价格：¥19.90 → ¥17.90；编码：GP-100"), ("en", "Price: ¥19.90 → ¥17.90; Code: GP-100")]
)
def test_a_price_change_reads_as_money_old_to_new_with_the_sku_named_after(lang: str, words: str) -> None:
    assert change_text(lang, "sku.updated", {"code": "GP-100", "price_minor": 1990}, {"price_minor": 1790}) == words


@pytest.mark.parametrize(("lang", "words"), [("zh", "状态：在售 → 下架"), ("en", "Status: On sale → Off sale")])
def test_taking_a_sku_off_sale_reads_as_its_sale_status(lang: str, words: str) -> None:
    said = changes(lang, "sku.updated", {"code": "GP-100", "active": True}, {"active": False})

    assert said[0].text(lambda key: MESSAGES[lang][key]) == words


@pytest.mark.parametrize(
    ("lang", "words"),
    [("zh", ["状态：待支付 → 已取消", "原因：buyer asked"]), ("en", ["Status: Awaiting payment → Cancelled"])],
)
def test_an_order_status_reads_in_the_order_words_and_what_was_set_follows(lang: str, words: list[str]) -> None:
    text = change_text(
        lang, "order.cancelled", {"status": "pending_payment"}, {"status": "cancelled", "reason": "buyer asked"}
    )

    assert all(part in text for part in words)
    assert "pending_payment" not in text and "cancelled" not in text.split("→")[0]


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("zh", "退款单号：R1；金额：¥1,234.56；状态：待审批；作废卡密：是"),
        ("en", "Refund no.: R1; Amount: ¥1,234.56; Status: awaiting approval; Voids the codes: yes"),
    ],
)
def test_a_creation_lists_what_was_set_with_money_in_its_currency_and_no_separate_currency(
    lang: str, words: str
) -> None:
    after = {"refund_no": "R1", "amount_minor": 123456, "currency": "CNY", "status": "awaiting_approval"}

    assert change_text(lang, "refund.requested", None, {**after, "voids_codes": True}) == words


def test_money_takes_the_currency_the_entry_names_and_formats_it_as_the_shop_does() -> None:
    assert change_text("en", "agent.topup", None, {"amount_minor": 150000, "currency": "USD"}) == "Amount: US$1,500.00"
    assert change_text("zh", "agent.topup", None, {"amount_minor": 1200, "currency": "JPY"}) == "金额：JP¥1,200"
    assert change_text("zh", "agent.topup", None, {"amount_minor": 5, "currency": "XTS"}) == "金额：5 XTS"
    assert change_text("zh", "channel.price_set", {"price_minor": 1990}, {"price_minor": 1890}) == (
        "价格：¥19.90 → ¥18.90"  # no currency recorded: the shop's own, CNY
    )


def test_a_changed_currency_is_said_and_each_side_keeps_its_own() -> None:
    words = change_text("en", "x.y", {"price_minor": 100, "currency": "CNY"}, {"price_minor": 100, "currency": "USD"})

    assert words == "Price: ¥1.00 → US$1.00; Currency: CNY → USD"


@pytest.mark.parametrize(("lang", "words"), [("zh", "价格：¥19.90 → —"), ("en", "Price: ¥19.90 → —")])
def test_a_removal_reads_as_the_old_value_to_nothing(lang: str, words: str) -> None:
    assert change_text(lang, "channel.price_removed", {"price_minor": 1990, "currency": "CNY"}, None) == words


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("zh", "费率：1.5%；阶梯：（门槛：¥1,000.00，费率：2.5%）；结算周期：每月"),
        ("en", "Fee rate: 1.5%; Tiers: (Threshold: ¥1,000.00, Rate: 2.5%); Cycle: monthly"),
    ],
)
def test_rates_are_percentages_and_nested_values_are_worded_too(lang: str, words: str) -> None:
    after = {"fee_rate_bp": 150, "tiers": [{"threshold_minor": 100000, "rate_bp": 250}], "cycle": "monthly"}

    assert change_text(lang, "settlement.rule_set", None, after) == words


@pytest.mark.parametrize(
    ("lang", "words"),
    [("zh", "角色：客服；权限：查看订单、查看财务"), ("en", "Role: support; Scopes: Read orders, Read finance")],
)
def test_roles_and_scopes_are_words(lang: str, words: str) -> None:
    assert (
        change_text(
            lang, "identity.token.created", None, {"role": "support", "scopes": ["orders.read", "finance.read"]}
        )
        == words
    )


def test_times_are_the_shops_wall_clock() -> None:
    words = change_text(
        "zh", "identity.token.created", None, {"expires_at": "2026-12-05T13:40:00+00:00"}, when=shanghai
    )

    assert words == "过期时间：2026-12-05 21:40 UTC+8"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_secret_is_never_shown_whatever_the_field_holds(lang: str) -> None:
    before = {"password": "old-hunter2", "totp_secret": "JBSWY3DPEHPK3PXP"}
    after = {"password": "hunter2", "totp_secret": "KRSXG5CTMVRXEZLU", "api_key": "sk_live_1", "token": "kq_x"}

    text = change_text(lang, "identity.user.updated", before, after)

    for secret in ("hunter2", "JBSWY3DPEHPK3PXP", "KRSXG5CTMVRXEZLU", "sk_live_1", "kq_x"):
        assert secret not in text
    assert text.count(MESSAGES[lang]["change.hidden"]) == 4
    assert "→" not in text  # not even that a secret changed from one hidden value to another
    nested = change_text(lang, "x.y", None, {"mapping": {"signing_secret": "s3cr3t", "amount": "col_b"}})
    assert "s3cr3t" not in nested and "col_b" in nested


def test_a_secret_field_keeps_its_few_safe_words() -> None:
    assert change_text("zh", "callback_endpoint.set", None, {"secret": "rotated"}) == "签名密钥：已轮换"
    assert change_text("en", "callback_endpoint.set", None, {"secret": "whsec_abc"}) == "Signing secret: (hidden)"


def test_secret_names_are_told_from_counts_and_prefixes() -> None:
    assert is_secret("secret") and is_secret("password") and is_secret("token") and is_secret("secret_sealed")
    assert not is_secret("tokens_revoked") and not is_secret("prefix") and not is_secret("key_id")


@pytest.mark.parametrize(
    ("lang", "words"), [("zh", "colour：red → blue；size：3"), ("en", "colour: red → blue; size: 3")]
)
def test_an_unknown_field_reads_by_its_stored_name(lang: str, words: str) -> None:
    assert change_text(lang, "plugin.painted", {"colour": "red"}, {"colour": "blue", "size": 3}) == words


def test_what_changed_comes_before_what_was_set_and_what_the_entry_names() -> None:
    said = changes("en", "agent.updated", {"code": "A1", "tier": "gold", "status": "active"}, {"status": "suspended"})

    assert said == [Change("Status", "active", "suspended"), Change("Code", None, "A1"), Change("Tier", None, "gold")]


def test_an_entry_without_a_change_has_no_words() -> None:
    assert changes("zh", "identity.session.created", None, None) == []
    assert change_text("en", "marketplace.secret_revealed", None, {}) == ""


def test_every_field_and_value_has_words_in_both_languages() -> None:
    for key in MESSAGES["zh"]:
        if key.startswith("change."):
            assert MESSAGES["en"].get(key), key


async def given_a_price_change(rt: Runtime, client: httpx.AsyncClient) -> Console:
    """alice, an owner, signed in; GP-100 repriced from ¥19.90 to ¥17.90 and taken off sale by her."""
    await given_user(rt, "alice", "owner")
    sku = await given_sku(rt, code="GP-100", price_minor=1990)
    async with rt.db.transaction() as session:
        await catalog.update_sku(session, sku.id, SkuUpdate(price_minor=1790, active=False), actor="alice")
    return await console_sign_in(client)


@pytest.mark.parametrize(
    ("lang", "price", "sale"), [("zh", "价格：¥19.90 → ¥17.90", "状态：在售 → 下架"), ("en", "Price", "On sale")]
)
async def test_the_audit_page_says_the_change_in_words_not_json(
    rt: Runtime, client: httpx.AsyncClient, lang: str, price: str, sale: str
) -> None:
    console = await given_a_price_change(rt, client)
    client.cookies.set("lang", lang)

    trail = await console.get("/admin/audit?action=sku.updated")

    row = re.search(r'<tr data-action="sku.updated">.*?</tr>', trail.text, re.S)
    assert row is not None, trail.text
    words = re.sub(r"<[^>]+>", "", row.group(0))
    assert price in words and sale in words
    assert "price_minor" not in row.group(0) and "{" not in words


async def test_the_audit_download_carries_the_change_in_words_beside_the_raw_json(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    console = await given_a_price_change(rt, client)

    header, *rows = read_csv(await console.get("/admin/audit.csv?action=sku.updated"))
    column = header.index("变更（文字）")
    assert header[column - 2 : column] == ["变更前", "变更后"]
    [row] = rows
    *changed, named = row[column].split("；")
    assert sorted(changed) == ["价格：¥19.90 → ¥17.90", "状态：在售 → 下架"] and named == "编码：GP-100"
    assert json.loads(row[column - 1]) == {"price_minor": 1790, "active": False}  # the raw, for machines

    client.cookies.set("lang", "en")
    header_x, *rows_x = read_xlsx(await console.get("/admin/audit.xlsx?action=sku.updated"))
    column_x = header_x.index("Change (in words)")
    words = str(rows_x[0][column_x])
    assert "Price: ¥19.90 → ¥17.90" in words and "Status: On sale → Off sale" in words
