"""`kaquan channel …`, driven as an operator drives it: channels, prices, quotas, agents, deposits, keys.

A refused command exits non-zero with one line naming the error code and the reason,
shows no secret and changes nothing (the harness compares every table's row count).
"""

import json
import re

import pytest
from tests.support.cli import Kaquan, given_catalog, one_line
from tests.support.loops import in_own_loop

from kaquan.audit import service as audit
from kaquan.kit.db import Database


def refused_with(kaquan: Kaquan, code: str, *args: str, exit_code: int = 1) -> str:
    """The one-line message of a command that must be refused with `code`."""
    said = kaquan.refused(*args, exit_code=exit_code)
    lines = said.strip().splitlines()
    assert len(lines) == 1, said
    assert f"({code})" in lines[0], said
    return lines[0]


def audit_text(kaquan: Kaquan) -> str:
    async def work() -> str:
        db = Database(kaquan.database_url)
        try:
            async with db.read() as session:
                found = [entry async for entry in audit.entries(session)]
        finally:
            await db.dispose()
        return json.dumps([[e.actor, e.action, e.target, e.before, e.after] for e in found], ensure_ascii=False)

    return in_own_loop(work)


def issued(output: str) -> tuple[str, str]:
    key_id = re.search(r"key id: (kq_ak_[0-9a-f]{16})", output)
    secret = re.search(r"secret: (kq_sk_[A-Za-z0-9_-]{43})", output)
    assert key_id and secret, output
    return key_id.group(1), secret.group(1)


# --- channels, prices, quotas -------------------------------------------------------------------


def test_a_channel_is_configured_and_listed(kaquan: Kaquan) -> None:
    assert "api" not in kaquan.ok("channel", "list")

    said = kaquan.ok("channel", "configure", "api", "--fee-bp", "150", "--warehouses", "main", "--inactive")
    listed = one_line(kaquan.ok("channel", "list"))

    assert "channel api updated" in said
    assert "api api 150 main False" in listed
    assert '"channel.configured"' in audit_text(kaquan)


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (("--fee-bp", "10001"), "bad_input", "fee_rate_bp must be between 0 and 10000"),
        (("--warehouses", "main,atlantis"), "bad_input", "no warehouse 'atlantis'"),
    ],
    ids=["fee-over-100%", "unknown-warehouse"],
)
def test_a_bad_channel_setting_is_a_one_line_error_and_changes_nothing(
    kaquan: Kaquan, args: tuple[str, ...], code: str, reason: str
) -> None:
    kaquan.ok("channel", "configure", "api", "--fee-bp", "100")

    assert reason in refused_with(kaquan, code, "channel", "configure", "api", *args)
    assert "api api 100 all True" in one_line(kaquan.ok("channel", "list"))


def test_an_unknown_channel_is_a_one_line_error(kaquan: Kaquan) -> None:
    kaquan.ok("channel", "list")

    assert "no channel 'nowhere'" in refused_with(kaquan, "channel_not_found", "channel", "configure", "nowhere")


def test_a_sku_is_priced_per_tier_and_a_bad_price_refused(kaquan: Kaquan) -> None:
    given_catalog(kaquan)

    assert "VIDEO-1M costs ¥15.00 in api" in kaquan.ok("channel", "price", "api", "VIDEO-1M", "1500")
    assert "for tier gold" in kaquan.ok("channel", "price", "api", "VIDEO-1M", "1400", "--tier", "gold")

    refused_with(kaquan, "sku_not_found", "channel", "price", "api", "NO-SUCH", "100")
    refused_with(kaquan, "bad_input", "channel", "price", "api", "VIDEO-1M", "--", "-5")
    assert "a tier name has at most 32" in refused_with(
        kaquan, "bad_input", "channel", "price", "api", "VIDEO-1M", "100", "--tier", "t" * 33
    )
    not_a_number = kaquan.refused("channel", "price", "api", "VIDEO-1M", "12.50", exit_code=2)
    assert "Invalid value for 'price_minor'" in one_line(not_a_number)
    assert "give a price, or --remove" in one_line(kaquan.refused("channel", "price", "api", "VIDEO-1M", exit_code=2))


def test_a_price_is_taken_off_the_list_per_tier(kaquan: Kaquan) -> None:
    given_catalog(kaquan)
    kaquan.ok("channel", "price", "api", "VIDEO-1M", "1500")
    kaquan.ok("channel", "price", "api", "VIDEO-1M", "1400", "--tier", "gold")

    said = kaquan.ok("channel", "price", "api", "VIDEO-1M", "--remove", "--tier", "gold")

    assert "VIDEO-1M is off the api price list for tier gold" in said
    assert kaquan.state()["channel_prices"] == 1
    refused_with(kaquan, "price_not_found", "channel", "price", "api", "VIDEO-1M", "--remove", "--tier", "gold")
    assert "give a price, or --remove" in one_line(
        kaquan.refused("channel", "price", "api", "VIDEO-1M", "100", "--remove", exit_code=2)
    )


def test_a_quota_is_set_and_lifted_and_a_bad_one_refused(kaquan: Kaquan) -> None:
    given_catalog(kaquan)

    assert "api quota for VIDEO-1M: 5000 bp" in kaquan.ok("channel", "quota", "api", "VIDEO-1M", "5000")
    assert "api quota for VIDEO-1M: none" in kaquan.ok("channel", "quota", "api", "VIDEO-1M")
    assert "max_share_bp must be between 0 and 10000" in refused_with(
        kaquan, "bad_input", "channel", "quota", "api", "VIDEO-1M", "10001"
    )


# --- agents and deposits ------------------------------------------------------------------------


def test_an_agent_is_added_topped_up_once_per_reference_and_listed(kaquan: Kaquan) -> None:
    assert "agent acme created (id 1)" in kaquan.ok(
        "channel", "agent", "add", "acme", "--name", "Acme Games", "--credit-limit", "20000", "--tier", "gold"
    )

    first = kaquan.ok("channel", "agent", "topup", "acme", "50000", "--reference", "BANK-1", "--memo", "预存款")
    again = kaquan.ok("channel", "agent", "topup", "acme", "50000", "--reference", "BANK-1")
    listed = one_line(kaquan.ok("channel", "agent", "list"))

    assert "acme: balance ¥500.00" in first
    assert again == first
    assert "acme Acme Games gold active ¥500.00 ¥200.00" in listed
    assert kaquan.state()["ledger_transfers"] == 1


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("acme", "--name", "Again"), "agent_exists"),
        (("zeta", "--name", "Zeta", "--credit-limit", "-1"), "bad_input"),
        (("zeta", "--name", "Zeta", "--currency", "XXX"), "bad_input"),
        (("ze ta", "--name", "Zeta"), "bad_input"),
        (("zeta", "--name", "n" * 201), "bad_input"),
    ],
    ids=["duplicate", "negative-credit-limit", "unsupported-currency", "bad-code", "name-too-long"],
)
def test_a_bad_agent_is_a_one_line_error_and_changes_nothing(kaquan: Kaquan, args: tuple[str, ...], code: str) -> None:
    kaquan.ok("channel", "agent", "add", "acme", "--name", "Acme")

    refused_with(kaquan, code, "channel", "agent", "add", *args)


def test_a_bad_top_up_is_a_one_line_error_and_changes_nothing(kaquan: Kaquan) -> None:
    kaquan.ok("channel", "agent", "add", "acme", "--name", "Acme")
    kaquan.ok("channel", "agent", "topup", "acme", "500", "--reference", "BANK-1")

    assert "non-zero" in refused_with(kaquan, "bad_input", "channel", "agent", "topup", "acme", "0", "--reference", "X")
    refused_with(kaquan, "idempotency_conflict", "channel", "agent", "topup", "acme", "400", "--reference", "BANK-1")
    refused_with(kaquan, "agent_not_found", "channel", "agent", "topup", "nobody", "500", "--reference", "BANK-2")
    refused_with(
        kaquan, "insufficient_balance", "channel", "agent", "topup", "acme", "--reference", "FIX", "--yes", "--", "-501"
    )
    missing = kaquan.refused("channel", "agent", "topup", "acme", "500", exit_code=2)
    assert "--reference" in one_line(missing)


# --- keys and callbacks -------------------------------------------------------------------------


def test_a_key_is_issued_rotated_and_revoked_and_its_secrets_never_reach_the_audit_trail(kaquan: Kaquan) -> None:
    kaquan.ok("channel", "agent", "add", "acme", "--name", "Acme")

    key_id, secret = issued(kaquan.ok("channel", "agent", "key", "acme", "--ip", "10.0.0.0/8", "--ip", "192.0.2.7"))
    rotated = kaquan.ok("channel", "agent", "rotate", "acme", key_id, "--yes")
    revoked = kaquan.ok("channel", "agent", "revoke", "acme", key_id, "--yes")

    new_secret = re.search(r"new secret: (kq_sk_[A-Za-z0-9_-]{43})", rotated)
    assert new_secret and new_secret.group(1) != secret
    assert f"key {key_id} revoked" in revoked
    trail = audit_text(kaquan)
    assert key_id in trail and "10.0.0.0/8" not in trail
    assert secret not in trail and new_secret.group(1) not in trail
    assert "key_revoked" in refused_with(kaquan, "key_revoked", "channel", "agent", "rotate", "acme", key_id, "--yes")


def test_bad_key_commands_are_one_line_errors_and_change_nothing(kaquan: Kaquan) -> None:
    kaquan.ok("channel", "agent", "add", "acme", "--name", "Acme")
    kaquan.ok("channel", "agent", "add", "zeta", "--name", "Zeta")
    key_id, _ = issued(kaquan.ok("channel", "agent", "key", "acme"))

    assert "entry 2" in refused_with(
        kaquan, "bad_input", "channel", "agent", "key", "acme", "--ip", "10.0.0.1", "--ip", "10.0.0.300"
    )
    refused_with(kaquan, "agent_not_found", "channel", "agent", "key", "nobody")
    refused_with(kaquan, "key_not_found", "channel", "agent", "rotate", "acme", "kq_ak_0000000000000000", "--yes")
    refused_with(kaquan, "key_not_found", "channel", "agent", "revoke", "zeta", key_id, "--yes")


def test_a_callback_url_is_set_with_a_secret_shown_once_and_a_private_one_refused(kaquan: Kaquan) -> None:
    kaquan.ok("channel", "agent", "add", "acme", "--name", "Acme")

    said = kaquan.ok("channel", "agent", "callback", "acme", "https://93.184.216.34/kq/hook")

    secret = re.search(r"signing secret: (whsec_\S+)", said)
    assert secret, said
    assert secret.group(1) not in audit_text(kaquan)
    refused_with(kaquan, "callback_url_refused", "channel", "agent", "callback", "acme", "http://127.0.0.1/hook")
