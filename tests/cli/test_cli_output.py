"""What the CLI prints: money as money, tables that survive a pipe, JSON for scripts, progress for long work.

The runner's standard output is not a terminal, as when an operator pipes a
command into grep or a file.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import typer.main
from tests.support.builders import random_codes
from tests.support.cli import Kaquan, code_file, given_catalog
from tests.support.statements import wechat_bill, wechat_payment

from kaquan.cli.app import app

LONG_NAME = "超长的商品名称 [年卡] A product name far wider than any terminal would show in one column [/b]"
# Commands that list things, and the arguments they need on an empty catalog.
LISTINGS = {
    ("stock",): (),
    ("product", "list"): (),
    ("sku", "list"): (),
    ("channel", "list"): (),
    ("channel", "agent", "list"): (),
    ("channel", "marketplace", "list"): (),
    ("flash", "list"): (),
    ("warehouse", "list"): (),
    ("warehouse", "transfers"): (),
    ("warehouse", "rule", "list"): (),
    ("reconcile", "differences"): (),
    ("reconcile", "match"): ("--source", "wechatpay", "--from", "2026-12-05"),
    ("reconcile", "mapping", "list"): (),
    ("settlement", "list"): (),
    ("ledger", "entries"): ("deposits:CNY",),
    ("risk", "rules", "list"): (),
    ("risk", "rules", "features"): (),
    ("risk", "list", "show"): (),
    ("risk", "review", "list"): (),
    ("risk", "models"): (),
}


def _commands(group: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every command of a (typer's own) click group, by its words."""
    found: dict[tuple[str, ...], Any] = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found |= _commands(command, (*path, name))
        else:
            found[(*path, name)] = command
    return found


def test_every_listing_command_takes_json() -> None:
    commands = _commands(typer.main.get_group(app))
    listings = {
        path for path in commands if path[-1] in ("list", "transfers", "entries", "differences", "stock", "models")
    }

    assert listings <= set(LISTINGS)
    without = [path for path in LISTINGS if "--json" not in {o for p in commands[path].params for o in p.opts}]
    assert without == []


def test_every_listing_prints_json_that_parses(kaquan: Kaquan) -> None:
    kaquan.ok("channel", "agent", "add", "acme", "--name", "Acme")
    kaquan.ok("channel", "agent", "topup", "acme", "123456", "--reference", "BANK-1")

    for command, needs in LISTINGS.items():
        out = kaquan.ok(*command, *needs, "--json")
        json.loads(out)  # one document, nothing else on standard output

    [agent] = json.loads(kaquan.ok("channel", "agent", "list", "--json"))
    assert agent["balance"] == {"amount_minor": 123456, "currency": "CNY"}
    assert agent["credit_limit"] == {"amount_minor": 0, "currency": "CNY"}


def test_money_is_printed_as_money_not_minor_units(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan)  # VIDEO-1M at 1990 fen
    kaquan.ok("channel", "agent", "add", "acme", "--name", "Acme", "--credit-limit", "50000")

    priced = kaquan.ok("channel", "price", "api", "VIDEO-1M", "180000")
    topped = kaquan.ok("channel", "agent", "topup", "acme", "123456", "--reference", "BANK-1")
    skus = kaquan.ok("sku", "list")
    agents = kaquan.ok("channel", "agent", "list")

    assert "VIDEO-1M costs ¥1,800.00 in api" in priced
    assert "acme: balance ¥1,234.56" in topped
    assert "¥19.90" in skus and "1990" not in skus
    assert "¥1,234.56" in agents and "¥500.00" in agents and "123456" not in agents


def test_a_piped_table_keeps_every_character_of_every_cell_markup_included(kaquan: Kaquan) -> None:
    kaquan.ok("product", "create", "--name", LONG_NAME, "--kind", "membership")

    narrow = kaquan("product", "list", env={"COLUMNS": "40"})

    assert narrow.exit_code == 0
    assert "…" not in narrow.stdout
    assert LONG_NAME in narrow.stdout  # on one line: grep finds it


def test_long_imports_show_their_progress(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan)
    bill = tmp_path / "bill.csv"
    bill.write_bytes(wechat_bill([wechat_payment(1), wechat_payment(2)]))

    imported = kaquan.ok("import", code_file(tmp_path, *random_codes(50)), "--sku", "VIDEO-1M")
    statement = kaquan.ok("reconcile", "import", str(bill), "--source", "wechatpay")

    assert "sealing and storing: 50" in imported and "━" in imported
    size = f"{bill.stat().st_size / 1000:.1f}/{bill.stat().st_size / 1000:.1f} kB"
    assert "reading 读取: 2 lines" in statement and size in statement


@pytest.mark.parametrize(
    "command",
    [
        ("leaks", "trace", "LEAK", "--quarantine", "--reason", "posted on a forum"),
        ("channel", "agent", "refund", "acme", "OUT-1", "--reason", "code rejected"),
        ("channel", "agent", "rotate", "acme", "kq_ak_0000000000000000"),
        ("channel", "agent", "revoke", "acme", "kq_ak_0000000000000000"),
        ("channel", "agent", "topup", "acme", "--reference", "FIX-1", "--", "-500"),
        ("channel", "marketplace", "rotate", "tmall"),
        ("keys", "rotate"),
        ("settlement", "confirm", "1"),
        ("reconcile", "resolve", "1", "--resolution", "write_off"),
        ("flash", "end", "1"),
    ],
    ids=lambda command: "-".join(word for word in command[:3] if not word.startswith("-")),
)
def test_a_destructive_command_without_a_terminal_needs_yes(
    kaquan: Kaquan, tmp_path: Path, command: tuple[str, ...]
) -> None:
    leak = code_file(tmp_path, "ABCDEFGHJKLMNPQR", name="leak.txt")
    args = [leak if word == "LEAK" else word for word in command]

    said = kaquan.refused(*args, exit_code=2)

    assert "pass --yes" in said and "Nothing was changed" in said


def test_quarantine_needs_a_reason(kaquan: Kaquan, tmp_path: Path) -> None:
    leak = code_file(tmp_path, "ABCDEFGHJKLMNPQR", name="leak.txt")

    said = kaquan.refused("leaks", "trace", leak, "--quarantine", "--yes", exit_code=2)

    assert "--reason" in said
