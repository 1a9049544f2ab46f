"""`kaquan backup` and `kaquan restore`, driven as an operator drives them: what they say, what they refuse."""

import base64
import json
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from tests.support.cli import PG_URL, Kaquan, given_stock, one_line
from tests.support.loops import in_own_loop

from kaquan.kit.crypto import new_key
from kaquan.kit.db import Database

# What a backup's manifest says is checked the same way on both databases: these run on SQLite only.
ON_SQLITE = pytest.mark.parametrize("kaquan", ["sqlite"], indirect=True)


def backed_up(kaquan: Kaquan, tmp_path: Path) -> Path:
    """A database with 12 codes of VIDEO-1M, backed up to tmp_path/backup."""
    given_stock(kaquan, tmp_path, 12)
    directory = tmp_path / "backup"
    said = one_line(kaquan.ok("backup", str(directory)))
    assert f"to {directory}" in said
    assert "the master key is not in the backup" in said
    return directory


def test_a_backup_restores_into_an_empty_database_with_every_row(kaquan: Kaquan, tmp_path: Path) -> None:
    directory = backed_up(kaquan, tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    original = kaquan.state()

    assert manifest["counts"]["inventory_codes"] == 12
    assert manifest["schema_revision"] and manifest["kind"] in kaquan.database_url
    data = directory / manifest["data_file"]
    assert data.stat().st_size == manifest["size_bytes"]
    assert manifest["master_key_ids"], "names the key a restore needs"
    master_key = (kaquan.var_dir / "master.key").read_text().strip()
    assert master_key not in data.read_bytes().decode("latin-1")

    fresh = Kaquan(f"sqlite:///{tmp_path / 'fresh.db'}", kaquan.var_dir)
    if kaquan.database_url.startswith("postgresql"):
        fresh = kaquan  # PostgreSQL: over the same database, emptied by the restore's --yes below
        said = one_line(kaquan.ok("restore", str(directory), "--yes"))
        assert "replacing what the database held" in said
    else:
        said = one_line(fresh.ok("restore", str(directory)))
        assert "into an empty database" in said
    assert "every count checked" in said
    assert fresh.state() == original
    assert fresh.stock() == kaquan.stock()


def test_restore_over_a_database_with_data_needs_yes(kaquan: Kaquan, tmp_path: Path) -> None:
    directory = backed_up(kaquan, tmp_path)

    refused = one_line(kaquan.refused("restore", str(directory), exit_code=2))

    assert "refused: replace the" in refused and "with the backup needs confirmation" in refused
    assert "pass --yes. Nothing was changed." in refused


@ON_SQLITE
def test_a_damaged_backup_is_refused_and_nothing_changes(kaquan: Kaquan, tmp_path: Path) -> None:
    directory = backed_up(kaquan, tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    data = directory / manifest["data_file"]
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    data.write_bytes(bytes(damaged))

    refused = one_line(kaquan.refused("restore", str(directory), "--yes"))

    assert "(bad_backup)" in refused and "checksum does not match" in refused


@ON_SQLITE
def test_a_backup_from_a_newer_schema_is_refused(kaquan: Kaquan, tmp_path: Path) -> None:
    directory = backed_up(kaquan, tmp_path)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "schema_revision": "9999aaaa0000", "kaquan_version": "9.0"}))

    refused = one_line(kaquan.refused("restore", str(directory), "--yes"))

    assert "(backup_schema_newer)" in refused and "9999aaaa0000" in refused and "9.0" in refused


@ON_SQLITE
def test_a_directory_that_is_not_a_backup_is_refused(kaquan: Kaquan, tmp_path: Path) -> None:
    kaquan.ok("migrate")
    (tmp_path / "empty").mkdir()

    refused = one_line(kaquan.refused("restore", str(tmp_path / "empty")))

    assert "(bad_backup)" in refused and "no manifest.json" in refused


@ON_SQLITE
def test_a_backup_never_overwrites_another(kaquan: Kaquan, tmp_path: Path) -> None:
    directory = backed_up(kaquan, tmp_path)
    before = (directory / "manifest.json").read_text()

    refused = one_line(kaquan.refused("backup", str(directory)))

    assert "(backup_exists)" in refused
    assert (directory / "manifest.json").read_text() == before


@pytest.mark.skipif(not PG_URL, reason="pg_dump backs up PostgreSQL only; KAQUAN_TEST_DATABASE_URL is not set")
@pytest.mark.parametrize("kaquan", ["postgresql"], indirect=True)
def test_a_missing_pg_dump_is_named_with_where_it_was_looked_for(kaquan: Kaquan, tmp_path: Path) -> None:
    kaquan.ok("migrate")
    nowhere = tmp_path / "no-tools"
    nowhere.mkdir()

    result = kaquan("backup", str(tmp_path / "b"), env={"KAQUAN_PG_BIN_DIR": str(nowhere)})

    assert result.exit_code == 1
    assert "(backup_tool_missing)" in one_line(result.stderr) and str(nowhere) in one_line(result.stderr)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("unmigrated_kaquan", ["sqlite"], indirect=True)
def test_a_database_never_migrated_has_nothing_to_back_up(unmigrated_kaquan: Kaquan, tmp_path: Path) -> None:
    kaquan = unmigrated_kaquan
    refused = one_line(kaquan.refused("backup", str(tmp_path / "b")))

    assert "(bad_backup)" in refused and "never migrated" in refused
    assert not (tmp_path / "b").exists()


def test_a_replacing_restore_leaves_no_table_the_backup_did_not_have(kaquan: Kaquan, tmp_path: Path) -> None:
    directory = backed_up(kaquan, tmp_path)
    in_own_loop(lambda: _execute(kaquan.database_url, "CREATE TABLE from_a_newer_kaquan (id integer)"))

    kaquan.ok("restore", str(directory), "--yes")

    assert "from_a_newer_kaquan" not in in_own_loop(lambda: _tables(kaquan.database_url))
    assert "ledger balanced" in kaquan.ok("ledger", "check")


async def _execute(url: str, statement: str) -> None:
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await db.dispose()


async def _tables(url: str) -> list[str]:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            return await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await db.dispose()


@ON_SQLITE
def test_a_restore_names_the_master_key_it_needs_when_the_configured_one_is_another(
    kaquan: Kaquan, tmp_path: Path
) -> None:
    directory = backed_up(kaquan, tmp_path)
    [needed] = json.loads((directory / "manifest.json").read_text())["master_key_ids"]
    elsewhere = Kaquan(f"sqlite:///{tmp_path / 'elsewhere.db'}", tmp_path / "other-var")

    result = elsewhere("restore", str(directory), env={"KAQUAN_MASTER_KEY": base64.b64encode(new_key()).decode()})

    assert result.exit_code == 0, result.stderr
    warning = one_line(result.stderr)
    assert f"cannot open the restored keys; they need the master key with id {needed}" in warning
