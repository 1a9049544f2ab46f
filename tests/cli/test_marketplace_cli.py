"""`kaquan channel marketplace`, driven as an operator drives it: add a store, price it, deliver its order file."""

import csv
import re
import stat
from pathlib import Path

from tests.support.builders import random_codes
from tests.support.cli import Kaquan, code_file, given_catalog, one_line


def secret_in(stdout: str) -> str:
    found = re.search(r"push secret: (\S+)", stdout)
    assert found, stdout
    return found.group(1)


def given_store_selling(kaquan: Kaquan, tmp_path: Path, codes: list[str]) -> str:
    """Store tmall sells VIDEO-1M at 18.00 with a 5% fee; VIDEO-1M holds `codes` costing 12.00 each.
    Returns the push secret."""
    given_catalog(kaquan)
    kaquan.ok("import", code_file(tmp_path, *codes), "--sku", "VIDEO-1M", "--unit-cost", "1200")
    secret = secret_in(
        kaquan.ok("channel", "marketplace", "add", "tmall", "--name", "Tmall flagship", "--fee-bp", "500")
    )
    kaquan.ok("channel", "marketplace", "price", "tmall", "VIDEO-1M", "1800")
    return secret


def orders_csv(tmp_path: Path, *rows: str, name: str = "orders.csv") -> str:
    return code_file(tmp_path, "marketplace_order_id,sku,quantity", *rows, name=name)


def deliveries(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_store_is_added_with_a_secret_shown_once_shown_again_on_request_and_rotated(kaquan: Kaquan) -> None:
    added = kaquan.ok("channel", "marketplace", "add", "tmall", "--name", "Tmall flagship", "--fee-bp", "650")
    shown = kaquan.ok("channel", "marketplace", "secret", "tmall")
    rotated = kaquan.ok("channel", "marketplace", "rotate", "tmall", "--yes")
    current = kaquan.ok("channel", "marketplace", "secret", "tmall")
    listed = kaquan.ok("channel", "marketplace", "list")

    assert "store tmall added: channel marketplace:tmall, fee 6.50%" in added
    assert secret_in(shown) == secret_in(added)
    assert secret_in(rotated) != secret_in(added)
    assert secret_in(current) == secret_in(rotated)
    assert "Tmall flagship" in listed and "6.50%" in listed


def test_adding_a_store_twice_or_a_bad_store_code_is_refused(kaquan: Kaquan) -> None:
    kaquan.ok("channel", "marketplace", "add", "tmall", "--name", "Tmall")

    twice = one_line(kaquan.refused("channel", "marketplace", "add", "tmall", "--name", "Tmall"))
    bad = one_line(kaquan.refused("channel", "marketplace", "add", "Tmall Shop", "--name", "Tmall"))
    unknown = one_line(kaquan.refused("channel", "marketplace", "price", "nobody", "VIDEO-1M", "100"))

    assert "(marketplace_store_exists)" in twice
    assert "a store code is 1-20 characters" in bad
    assert "(marketplace_store_not_found)" in unknown


def test_an_order_file_is_delivered_to_a_private_plaintext_file(kaquan: Kaquan, tmp_path: Path) -> None:
    codes = random_codes(5)
    given_store_selling(kaquan, tmp_path, codes)
    out = tmp_path / "deliveries.csv"

    stdout = one_line(
        kaquan.ok(
            "channel",
            "marketplace",
            "import",
            "tmall",
            orders_csv(tmp_path, "TB-1,VIDEO-1M,2", "TB-2,VIDEO-1M,1"),
            "--out",
            str(out),
        )
    )

    assert "plaintext" in stdout
    assert "2 order(s) placed, 0 delivered again; 3 code(s) written to" in stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = deliveries(out)
    assert list(rows[0]) == ["marketplace_order_id", "order_no", "card_no", "secret", "expires_on"]
    assert [row["marketplace_order_id"] for row in rows] == ["TB-1", "TB-1", "TB-2"]
    assert {row["secret"] for row in rows} <= set(codes) and len({row["secret"] for row in rows}) == 3
    assert len({row["order_no"] for row in rows}) == 2
    sold = {(s.sold, s.available) for s in kaquan.stock()}
    assert sold == {(3, 2)}
    checked = kaquan.ok("ledger", "check")
    assert "ledger balanced" in checked
    assert "cost of goods of 2 order(s) waits for the worker" in checked
    assert kaquan.outbox_pass() == 1  # one event: the file's one batch
    checked = kaquan.ok("ledger", "check")
    assert "ledger balanced" in checked and "books agree" in checked and "waits for the worker" not in checked
    # three codes at 12.00, one cost-of-goods transfer per order (2 and 1 codes)
    assert "2 entries; balance -¥36.00" in kaquan.ok("ledger", "entries", "inventory:CNY")


def test_importing_the_file_again_delivers_the_same_codes_and_places_nothing_new(
    kaquan: Kaquan, tmp_path: Path
) -> None:
    given_store_selling(kaquan, tmp_path, random_codes(5))
    orders = orders_csv(tmp_path, "TB-1,VIDEO-1M,2", "TB-2,VIDEO-1M,1")
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    kaquan.ok("channel", "marketplace", "import", "tmall", orders, "--out", str(first))

    again = one_line(kaquan.ok("channel", "marketplace", "import", "tmall", orders, "--out", str(second)))

    assert "0 order(s) placed, 2 delivered again; 3 code(s) written" in again
    assert deliveries(second) == deliveries(first)
    assert {s.sold for s in kaquan.stock()} == {3}


def test_an_existing_deliveries_file_is_kept_unless_forced(kaquan: Kaquan, tmp_path: Path) -> None:
    given_store_selling(kaquan, tmp_path, random_codes(5))
    orders = orders_csv(tmp_path, "TB-1,VIDEO-1M,1")
    out = tmp_path / "deliveries.csv"
    out.write_text("keep me")
    out.chmod(0o644)

    kept = one_line(kaquan.refused("channel", "marketplace", "import", "tmall", orders, "--out", str(out)))
    kaquan.ok("channel", "marketplace", "import", "tmall", orders, "--out", str(out), "--force")

    assert "exists already" in kept
    assert [row["marketplace_order_id"] for row in deliveries(out)] == ["TB-1"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_bad_file_exits_1_naming_every_bad_line_and_places_nothing(kaquan: Kaquan, tmp_path: Path) -> None:
    given_store_selling(kaquan, tmp_path, random_codes(5))
    out = tmp_path / "deliveries.csv"
    orders = orders_csv(
        tmp_path, "TB-1,VIDEO-1M,1", "TB 2,VIDEO-1M,1", "TB-3,VIDEO-1M,-1", "TB-4,NO-SUCH-SKU,1", "TB-1,VIDEO-1M,1"
    )

    said = one_line(kaquan.refused("channel", "marketplace", "import", "tmall", orders, "--out", str(out)))

    assert "4 bad line(s), nothing placed" in said
    for line in (
        "line 3: marketplace_order_id is 1-64 characters",
        "line 4: quantity must be a whole number",
        "line 5: SKU NO-SUCH-SKU is not on the price list of store tmall",
        "line 6: marketplace order TB-1 is on line 2 already",
    ):
        assert line in said
    assert not out.exists()


def test_lines_that_cannot_be_delivered_are_named_and_the_rest_delivered(kaquan: Kaquan, tmp_path: Path) -> None:
    given_store_selling(kaquan, tmp_path, random_codes(4))
    out = tmp_path / "deliveries.csv"
    kaquan.ok("channel", "marketplace", "import", "tmall", orders_csv(tmp_path, "TB-1,VIDEO-1M,1"), "--out", str(out))
    orders = orders_csv(tmp_path, "TB-1,VIDEO-1M,2", "TB-2,VIDEO-1M,5", "TB-3,VIDEO-1M,3", name="more.csv")

    result = kaquan("channel", "marketplace", "import", "tmall", orders, "--out", str(out), "--force")

    assert result.exit_code == 3, result.output
    said = one_line(result.stderr)
    assert "2 line(s) not delivered" in said
    assert "line 2: marketplace order TB-1 was placed before (order" in said
    assert "line 3: out of stock: 5 x VIDEO-1M not available; nothing placed" in said
    assert [row["marketplace_order_id"] for row in deliveries(out)] == ["TB-3", "TB-3", "TB-3"]
    assert {s.sold for s in kaquan.stock()} == {4}


def test_the_import_help_says_the_deliveries_are_plaintext(kaquan: Kaquan) -> None:
    assert "PLAINTEXT" in one_line(kaquan.ok("channel", "marketplace", "import", "--help"))
