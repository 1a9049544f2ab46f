"""`backup` and `restore`: one consistent copy of the database with its manifest, and back.

Both take the database URL kaquan runs on. A backup writes a new directory; it never overwrites
one. A restore checks the backup's checksum, refuses a backup from a newer schema than this
code knows, refuses to overwrite a database holding data unless told to, verifies the restored
rows against the manifest's counts, and then migrates an older backup up to this code's schema.
"""

import asyncio
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.migrate import alembic_config, upgrade
from kaquan.operations.backups import contents, postgres, sqlite
from kaquan.operations.backups.errors import (
    BadBackup,
    SchemaTooNew,
    TargetExists,
    TargetNotEmpty,
    WrongDatabaseKind,
)
from kaquan.operations.backups.manifest import Manifest, checksum, read
from kaquan.operations.backups.sqlite import Progress


def _version() -> str:
    try:
        return metadata.version("kaquan")
    except metadata.PackageNotFoundError:
        return "unknown"


def _new_directory(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise TargetExists(f"{directory} exists and is not an empty directory; choose a new one", path=str(directory))
    directory.mkdir(parents=True, exist_ok=True)


async def backup(url: str, directory: Path, *, progress: Progress, pg_bin_dir: Path | None = None) -> Manifest:
    """Back the database at `url` up into the new directory `directory`; its manifest."""
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            migrated = bool(await contents.schema_revision(conn))
        if not migrated:
            raise BadBackup("the database was never migrated (`kaquan migrate`): there is nothing to back up")
        if db.is_postgresql:
            pg_dump = postgres.tool("pg_dump", pg_bin_dir)  # before anything is written
            _new_directory(directory)
            return await _backup_postgres(db, url, directory, pg_dump, progress)
        _new_directory(directory)
        return await _backup_sqlite(url, directory, progress)
    finally:
        await db.dispose()


async def _describe(conn: AsyncConnection, kind: str, data: Path, server_version: str = "") -> Manifest:
    return Manifest(
        kind=kind,
        data_file=data.name,
        schema_revision=await contents.schema_revision(conn),
        taken_at="",
        kaquan_version=_version(),
        sha256="",
        size_bytes=0,
        counts=await contents.row_counts(conn),
        master_key_ids=await contents.master_key_ids(conn),
        server_version=server_version,
    )


def _sealed(manifest: Manifest, data: Path, taken_at: str) -> Manifest:
    sealed = Manifest(
        **{
            **manifest.__dict__,
            "taken_at": taken_at,
            "sha256": checksum(data),
            "size_bytes": data.stat().st_size,
        }
    )
    sealed.write(data.parent)
    return sealed


async def _backup_sqlite(url: str, directory: Path, progress: Progress) -> Manifest:
    data = directory / sqlite.DATA_FILE
    taken_at = clock.now().isoformat()
    await asyncio.to_thread(sqlite.copy, sqlite.path_of(url), data, progress)
    copy = Database(f"sqlite:///{data}")
    try:
        async with copy.engine.connect() as conn:
            described = await _describe(conn, "sqlite", data)
    finally:
        await copy.dispose()
    return _sealed(described, data, taken_at)


async def _backup_postgres(db: Database, url: str, directory: Path, pg_dump: Path, progress: Progress) -> Manifest:
    data = directory / postgres.DATA_FILE
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            # One snapshot for the counts and for pg_dump: the manifest describes exactly what was dumped.
            snapshot = str((await conn.execute(text("SELECT pg_export_snapshot()"))).scalar_one())
            taken_at = clock.now().isoformat()
            server = str((await conn.execute(text("SHOW server_version"))).scalar_one())
            described = await _describe(conn, "postgresql", data, server)
            await postgres.dump(
                pg_dump,
                postgres.connection(url),
                data,
                snapshot=snapshot,
                progress=progress,
                tables=len(described.counts),
            )
    return _sealed(described, data, taken_at)


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    replaced: bool  # the database held data that the restore replaced
    migrated: bool  # the backup's schema was older; the restored database was migrated to this code's


async def restore(
    url: str, directory: Path, *, replace: bool, progress: Progress, pg_bin_dir: Path | None = None
) -> Restored:
    """Restore the backup in `directory` into the database at `url`; what was done."""
    manifest = read(directory)
    db = Database(url)
    try:
        kind = "postgresql" if db.is_postgresql else "sqlite"
        if manifest.kind != kind:
            raise WrongDatabaseKind(
                f"this is a {manifest.kind} backup; it cannot be restored into {kind}",
                backup=manifest.kind,
                database=kind,
            )
        unknown = contents.unknown_revisions(manifest.schema_revision)
        if unknown:
            raise SchemaTooNew(
                f"the backup's schema ({', '.join(unknown)}) is newer than this kaquan knows: restore it with the"
                f" kaquan that took it ({manifest.kaquan_version}) or a newer one",
                revision=manifest.schema_revision,
            )
        async with db.engine.connect() as conn:
            before = await contents.row_counts(conn)
        holds = contents.holds_data(before)
        if holds and not replace:
            raise TargetNotEmpty(
                "the database holds data; restoring replaces all of it: pass --yes to do so",
                rows=sum(rows for name, rows in before.items() if name not in contents.FIRST_START_TABLES),
            )
        data = directory / manifest.data_file
        if db.is_postgresql:
            pg_restore = postgres.tool("pg_restore", pg_bin_dir)
            await db.dispose()  # our connections would hold locks the restore's DROPs wait for
            await postgres.restore(
                pg_restore,
                postgres.connection(url),
                data,
                replace=bool(before),
                progress=progress,
                tables=len(manifest.counts),
            )
        else:
            await db.dispose()
            await asyncio.to_thread(sqlite.copy, data, sqlite.path_of(url), progress)
        async with db.engine.begin() as conn:
            after = await contents.row_counts(conn)
            # Tables the backup does not know (a newer kaquan's, restored over): gone, as a replace promises.
            for name in sorted(set(after) - set(manifest.counts)):
                await conn.execute(text(f"DROP TABLE IF EXISTS {conn.dialect.identifier_preparer.quote(name)}"))
                del after[name]
            revision = await contents.schema_revision(conn)
        differ = {name: (rows, after.get(name)) for name, rows in manifest.counts.items() if after.get(name) != rows}
        if differ:
            raise BadBackup(f"the restored rows differ from the manifest's counts: {differ}", tables=sorted(differ))
        migrated = False
        if contents.unknown_revisions(revision) == [] and revision != _head():
            await upgrade(db)
            migrated = True
        return Restored(manifest, replaced=holds, migrated=migrated)
    finally:
        await db.dispose()


def _head() -> str:
    return ",".join(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))
