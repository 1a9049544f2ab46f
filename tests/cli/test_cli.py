"""The `kaquan` command line, driven as an operator drives it: real commands, a real database.

Each test gets a database of its own (a fresh SQLite file, and a fresh PostgreSQL
database next to KAQUAN_TEST_DATABASE_URL when that is set) and a var/ directory
of its own. A refused command exits non-zero, says why by line number and
reason, never shows a secret, and changes nothing.
"""

import json
import re
from pathlib import Path

import pytest
from tests.support.builders import random_codes
from tests.support.cli import Kaquan, code_file, given_catalog, one_line
from tests.support.loops import in_own_loop

from kaquan.identity import Identity, authenticate_token
from kaquan.inventory.levels import Stock
from kaquan.kit.db import Database, describe


async def _authenticate(url: str, token: str) -> Identity | None:
    db = Database(url)
    try:
        return await authenticate_token(db, token)
    finally:
        await db.dispose()


# --- migrate ------------------------------------------------------------------------------------


def test_migrate_builds_the_schema_and_can_run_again(unmigrated_kaquan: Kaquan) -> None:
    kaquan = unmigrated_kaquan
    assert kaquan.state() == {}

    first = kaquan.ok("migrate")
    second = kaquan.ok("migrate")

    assert "is up to date" in first
    assert second == first
    assert describe(kaquan.database_url) in one_line(first)
    counts = kaquan.state()
    assert counts["inventory_warehouses"] == 1
    assert counts["catalog_products"] == 0


def test_a_database_url_of_an_unsupported_kind_is_a_clear_error(kaquan: Kaquan) -> None:
    for command in (["migrate"], ["stock"]):
        result = kaquan(*command, env={"KAQUAN_DATABASE_URL": "mysql://root@localhost/kaquan"})

        assert result.exit_code == 1, (command, result.output)
        assert isinstance(result.exception, SystemExit), (command, result.exception)
        assert "bad_database_url" in result.stderr
        assert "sqlite:///" in one_line(result.stderr)


# --- catalog ------------------------------------------------------------------------------------


def test_a_product_and_a_sku_are_created(kaquan: Kaquan) -> None:
    assert "product 1 created" in kaquan.ok("product", "create", "--name", "游戏点卡", "--kind", "game_points")

    out = kaquan.ok(
        "sku",
        "create",
        "--product",
        "1",
        "--code",
        "GAME-100",
        "--name",
        "100 points",
        "--price",
        "950",
        "--face-value",
        "1000",
        "--rule",
        '{"min_length": 12, "max_length": 12, "alphabet": "digits", "card_no_required": true}',
        "--encrypt-card-no",
    )

    assert "SKU GAME-100 created (id 1)" in out
    [listed] = json.loads(kaquan.ok("sku", "list", "--json"))
    assert {k: listed[k] for k in ("code", "price_minor", "face_value_minor", "currency", "encrypt_card_no")} == {
        "code": "GAME-100",
        "price_minor": 950,
        "face_value_minor": 1000,
        "currency": "CNY",
        "encrypt_card_no": True,
    }
    assert listed["code_rule"]["min_length"] == 12
    assert listed["code_rule"]["card_no_required"] is True


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ('{"min_length": 16', "--rule is not a valid code rule"),
        ("min_length=16", "--rule is not a valid code rule"),
        ('{"regex": "(unclosed"}', "not a valid regular expression"),
        ('{"min_length": 10, "max_length": 5}', "max_length 5 is below min_length 10"),
        ('{"colour": "red"}', "colour"),
        ("[16]", "--rule is not a valid code rule"),
    ],
    ids=["truncated-json", "not-json", "bad-regex", "lengths-reversed", "unknown-field", "not-an-object"],
)
def test_a_bad_rule_is_a_clear_error_and_creates_nothing(kaquan: Kaquan, rule: str, said: str) -> None:
    kaquan.ok("product", "create", "--name", "Video", "--kind", "membership")

    stderr = kaquan.refused(
        "sku", "create", "--product", "1", "--code", "V-1", "--name", "V", "--price", "100", "--rule", rule, exit_code=2
    )

    assert said in one_line(stderr)
    assert "Invalid value" in stderr


@pytest.mark.parametrize(
    ("options", "exit_code", "said"),
    [
        (["--currency", "XXX"], 2, "currency must be one of"),
        (["--price", "-1"], 2, "price_minor"),
        (["--stock-kind", "boxes"], 2, "stock_kind"),
        (["--code", "has space"], 2, "code"),
        (["--code", "1001"], 2, "digits only"),
        (["--product", "42"], 1, "(product_not_found)"),
        (["--code", "TAKEN"], 1, "(sku_code_taken)"),
    ],
    ids=["bad-currency", "negative-price", "unknown-stock-kind", "bad-code", "digit-code", "unknown-product", "taken"],
)
def test_a_bad_sku_is_a_clear_error_and_creates_nothing(
    kaquan: Kaquan, options: list[str], exit_code: int, said: str
) -> None:
    given_catalog(kaquan, code="TAKEN")
    fields = {"--product": "1", "--code": "NEW-1", "--name": "New", "--price": "100"}
    for option, value in zip(options[::2], options[1::2], strict=True):
        fields[option] = value

    stderr = kaquan.refused("sku", "create", *(part for pair in fields.items() for part in pair), exit_code=exit_code)

    assert said in one_line(stderr)


def test_an_unknown_product_kind_is_refused_by_the_option_parser(kaquan: Kaquan) -> None:
    kaquan.ok("migrate")

    stderr = kaquan.refused("product", "create", "--name", "X", "--kind", "spaceship", exit_code=2)

    assert "spaceship" in stderr


# --- importing codes ----------------------------------------------------------------------------


def test_a_file_is_imported_with_progress_and_a_summary(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan, "--rule", '{"min_length": 16, "max_length": 16, "alphabet": "upper_alnum"}')
    codes = random_codes(25)

    path = code_file(tmp_path, *codes)
    size = Path(path).stat().st_size

    out = kaquan.ok("import", path, "--sku", "VIDEO-1M", "--supplier", "Acme")

    assert "read 25 codes (utf-8, single)" in out
    assert "sealing and storing: 25" in out
    assert f"{size}/{size} bytes" in out  # the bar follows the file as it is read
    assert out.strip().splitlines()[-1] == "batch 1: 25 codes imported"
    assert not [code for code in codes if code in out]
    assert kaquan.stock() == [Stock(1, "main", imported=25, available=25)]


def test_a_gbk_csv_with_a_chinese_header_and_a_batch_expiry_is_imported(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan, "--encrypt-card-no", code="GAME-100")
    rows = [f"G{n:04d},{code}" for n, code in enumerate(random_codes(4))]

    out = kaquan.ok(
        "import",
        code_file(tmp_path, "卡号,卡密", *rows, encoding="gbk"),
        "--sku",
        "GAME-100",
        "--expires",
        "2027-12-31",
    )

    assert "read 4 codes (gb18030, csv)" in out
    assert "batch 1: 4 codes imported" in out


def test_a_file_with_bad_lines_exits_1_naming_each_line_and_reason_never_a_secret(
    kaquan: Kaquan, tmp_path: Path
) -> None:
    given_catalog(kaquan, "--rule", '{"min_length": 16, "max_length": 16}')
    good = random_codes(3)
    swapped_secret = random_codes(1)[0]
    lines = [good[0], "SHORTSECRET7", good[1], f"{swapped_secret},1001", good[2], good[0]]

    stderr = kaquan.refused("import", code_file(tmp_path, *lines), "--sku", "VIDEO-1M")

    said = one_line(stderr)
    assert "(import_rejected)" in said
    assert "3 bad line(s), nothing imported" in said
    assert "line 2: secret has 12 characters, the rule needs exactly 16 [format_rule]" in said
    assert "line 4:" in said
    assert "[malformed_line]" in said
    assert "line 6: the same code already appears on line 1 [duplicate_in_file]" in said
    result = kaquan("import", code_file(tmp_path, *lines), "--sku", "VIDEO-1M")
    for secret in [*good, "SHORTSECRET7", swapped_secret]:
        assert secret not in result.output


def test_many_bad_lines_are_summarised_after_the_first_ones(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan, "--rule", '{"min_length": 16}')

    stderr = kaquan.refused("import", code_file(tmp_path, *(f"short{n}" for n in range(250))), "--sku", "VIDEO-1M")

    assert "line 200:" in stderr
    assert "line 201:" not in stderr
    assert "… and 50 more" in stderr


def test_a_file_already_imported_exits_1_with_duplicate_codes(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan)
    codes = random_codes(3)
    path = code_file(tmp_path, *codes)
    kaquan.ok("import", path, "--sku", "VIDEO-1M")

    stderr = kaquan.refused("import", path, "--sku", "VIDEO-1M")

    assert "line 1: this code is already in the inventory [duplicate_code]" in one_line(stderr)
    assert not [code for code in codes if code in stderr]


def test_skip_invalid_imports_the_good_lines_and_lists_the_skipped_ones(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan, "--rule", '{"min_length": 16, "max_length": 16}')
    good = random_codes(3)

    result = kaquan(
        "import", code_file(tmp_path, good[0], "SHORT", good[1], "a,b", good[2]), "--sku", "VIDEO-1M", "--skip-invalid"
    )

    assert result.exit_code == 0, result.output
    said = one_line(result.stdout)
    assert "batch 1: 3 codes imported" in said
    assert "skipped line 2: secret has 5 characters, the rule needs exactly 16" in said
    assert "skipped line 4:" in said
    assert "SHORT " not in said
    assert not [code for code in good if code in result.output]
    assert kaquan.stock() == [Stock(1, "main", imported=3, available=3)]


def test_skip_invalid_lists_the_first_skipped_lines_and_counts_the_rest(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan, "--rule", '{"min_length": 16}')
    good = random_codes(2)
    path = code_file(tmp_path, *(f"short{n}" for n in range(250)), *good)

    result = kaquan("import", path, "--sku", "VIDEO-1M", "--skip-invalid")

    assert result.exit_code == 0, result.output
    assert "skipped line 200:" in result.stdout
    assert "skipped line 201:" not in result.stdout
    assert "… and 50 more skipped" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "batch 1: 2 codes imported"


@pytest.mark.parametrize(
    ("content", "options", "exit_code", "said"),
    [
        (b"", [], 1, "(import_file_invalid): the file holds no codes"),
        ("ABCD-0001\n".encode("utf-16"), [], 1, "(import_file_invalid)"),
        (b"ABCD-0001\n", ["--sku", "NO-SUCH-SKU"], 1, "(sku_not_found)"),
        (b"ABCD-0001\n", ["--warehouse", "nowhere"], 1, "(warehouse_not_found)"),
        (b"ABCD-0001\n", ["--layout", "xml"], 1, "unknown layout 'xml'"),
        (b"ABCD-0001\n", ["--encoding", "klingon"], 1, "unknown encoding 'klingon'"),
        (b"ABCD-0001\n", ["--expires", "31/12/2027"], 2, "is not a date like 2027-12-31"),
        (b"ABCD-0001\n", ["--unit-cost", "-5"], 2, "'--unit-cost': Input should be greater than or equal to 0"),
    ],
    ids=[
        "empty",
        "utf-16",
        "unknown-sku",
        "unknown-warehouse",
        "bad-layout",
        "bad-encoding",
        "bad-date",
        "negative-cost",
    ],
)
def test_an_import_that_cannot_start_is_a_clear_error_and_imports_nothing(
    kaquan: Kaquan, tmp_path: Path, content: bytes, options: list[str], exit_code: int, said: str
) -> None:
    given_catalog(kaquan)
    path = tmp_path / "codes.txt"
    path.write_bytes(content)
    arguments = ["--sku", "VIDEO-1M", *options] if "--sku" not in options else options

    stderr = kaquan.refused("import", str(path), *arguments, exit_code=exit_code)

    assert said in one_line(stderr)
    assert "ABCD-0001" not in stderr


def test_a_missing_file_is_refused_by_the_argument_parser(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan)

    stderr = kaquan.refused("import", str(tmp_path / "nope.txt"), "--sku", "VIDEO-1M", exit_code=2)

    assert "nope.txt" in one_line(stderr)


# --- segments and stock -------------------------------------------------------------------------


def test_a_segment_is_added_and_an_overlapping_one_refused(kaquan: Kaquan) -> None:
    given_catalog(kaquan, "--stock-kind", "segment", code="GIFT-50")
    add = ("segment", "add", "--sku", "GIFT-50", "--prefix", "GC", "--width", "8")

    assert "segment batch 1: 5000 serials added" in kaquan.ok(*add, "--start", "10000001", "--end", "10005000")
    stderr = kaquan.refused(*add, "--start", "10005000", "--end", "10006000")
    also = kaquan.refused(
        "segment", "add", "--sku", "GIFT-50", "--prefix", "GC1", "--width", "7", "--start", "1", "--end", "9"
    )
    bad = kaquan.refused(*add, "--start", "10", "--end", "9")
    negative_cost = kaquan.refused(*add, "--start", "1", "--end", "9", "--unit-cost", "-1", exit_code=2)

    assert "(segment_overlap)" in stderr
    assert "(segment_overlap)" in also
    assert "(bad_input)" in bad
    assert "--unit-cost" in negative_cost
    assert kaquan.stock() == [Stock(1, "main", imported=5000, available=5000)]


def test_a_segment_for_a_code_sku_is_refused(kaquan: Kaquan) -> None:
    given_catalog(kaquan)

    stderr = kaquan.refused("segment", "add", "--sku", "VIDEO-1M", "--width", "8", "--start", "1", "--end", "9")

    assert "(wrong_stock_kind)" in stderr


def test_stock_is_shown_as_a_table_per_sku_and_warehouse(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan)
    kaquan.ok(
        "sku",
        "create",
        "--product",
        "1",
        "--code",
        "GIFT-50",
        "--name",
        "Gift",
        "--price",
        "4800",
        "--stock-kind",
        "segment",
    )
    kaquan.ok("import", code_file(tmp_path, *random_codes(12)), "--sku", "VIDEO-1M")
    kaquan.ok("segment", "add", "--sku", "GIFT-50", "--prefix", "GC", "--width", "8", "--start", "1", "--end", "300")

    out = kaquan.ok("stock")
    only_gift = kaquan.ok("stock", "--sku", "GIFT-50")

    rows = [re.split(r"\s*│\s*", line.strip("│ ")) for line in out.splitlines() if line.startswith("│")]
    assert rows == [
        ["VIDEO-1M", "main", "12", "12", "0", "0", "0", "0", "yes"],
        ["GIFT-50", "main", "300", "300", "0", "0", "0", "0", "yes"],
    ]
    assert "GIFT-50" in only_gift
    assert "VIDEO-1M" not in only_gift
    assert "(sku_not_found)" in kaquan.refused("stock", "--sku", "NOPE")


# --- demo and bench -----------------------------------------------------------------------------


def test_demo_loads_once_and_a_second_run_changes_nothing(kaquan: Kaquan) -> None:
    first = kaquan.ok("demo")
    loaded = kaquan.state()
    second = kaquan.ok("demo")

    assert "demo data loaded" in first
    assert "demo data already present" in second
    assert kaquan.state() == loaded
    assert (loaded["catalog_products"], loaded["catalog_skus"], loaded["catalog_product_images"]) == (7, 12, 7)
    assert all(row.adds_up and row.imported > 0 for row in loaded["stock"])
    # everything is on sale but the one code the demo agent bought (its order DEMO-0001, to refund in the README)
    assert [(row.sold, row.imported - row.available) for row in loaded["stock"] if row.sold] == [(1, 1)]
    assert loaded["orders"] == 1
    assert loaded["identity_users"] == 1
    password = re.search(r"password: (\S+)", first)
    token = re.search(r"API token: (kqt_\S+)", first)
    assert password and token
    assert "username: owner" in first
    assert password[1] not in second and token[1] not in second
    agent_secret = re.search(r"KAQUAN_SECRET=(kq_sk_\S+)", first)
    assert agent_secret and agent_secret[1] not in second, "the demo agent's key is shown once"
    owner = in_own_loop(lambda: _authenticate(kaquan.database_url, token[1]))
    assert owner is not None and owner.username == "owner" and owner.role == "owner"


def test_bench_agent_ends_with_one_json_line_that_checks_the_invariants(kaquan: Kaquan) -> None:
    out = kaquan.ok(
        *("bench", "agent", "--hot-orders", "60", "--single-orders", "20", "--many-orders", "60", "--agents", "3"),
        *("--batch", "10", "--in-flight", "2", "--single-in-flight", "8"),
    )

    measured = json.loads(out.strip().splitlines()[-1])
    assert measured["db"] == describe(kaquan.database_url)
    assert measured["server_processes"] == 2, "the server runs in processes of its own, apart from the load"
    assert measured["orders"] + measured["refused"] == 120
    assert measured["hot_agent_orders_per_s"] > 0 and measured["many_agents_orders_per_s"] > 0
    assert measured["hot_agent_one_order_per_request_per_s"] > 0 and measured["orders_per_request"] == 10
    assert measured["refused"] == 3 * 5, "each of the many agents runs into its floor five orders early"
    assert measured["duplicate_codes"] == 0
    assert measured["ledger_balanced"] is True and measured["balance_never_below_limit"] is True


def test_bench_import_ends_with_one_json_line(kaquan: Kaquan) -> None:
    out = kaquan.ok("bench", "import", "--count", "2000")

    measured = json.loads(out.strip().splitlines()[-1])
    assert set(measured) == {"db", "codes", "seconds", "codes_per_s", "peak_rss_mib"}
    assert measured["codes"] == 2000
    assert measured["db"] == describe(kaquan.database_url)
    assert isinstance(measured["seconds"], int | float) and measured["seconds"] > 0
    assert isinstance(measured["codes_per_s"], int) and measured["codes_per_s"] > 0
    [row] = kaquan.stock()
    assert (row.imported, row.available) == (2000, 2000)


def test_bench_import_refuses_a_count_below_one(kaquan: Kaquan) -> None:
    kaquan.ok("migrate")

    kaquan.refused("bench", "import", "--count", "0", exit_code=2)
