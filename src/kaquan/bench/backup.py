"""`kaquan bench backup`: how long `kaquan backup` and `kaquan restore` take on the configured database.

Timed: the backup into a temporary directory (checksum and manifest included) and its restore into a
scratch database (a temporary SQLite file, or a `<database>_bench_restore` database beside the
configured PostgreSQL one, created empty and dropped after). The baseline in the same run is the
floor beneath each: the SQLite file copied as bytes (no snapshot, no checksum), or a bare
`pg_dump -Fc` to a file and `pg_restore` of it. The database itself is only read.
"""

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from kaquan.bench.harness import Progress
from kaquan.kit.db import Database, async_url, describe
from kaquan.operations import backups
from kaquan.operations.backups import postgres, sqlite
from kaquan.runtime import Runtime


def _ignore(_done: int, _total: int) -> None:
    return None


async def _timed(work: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await work
    return round(time.perf_counter() - started, 2)


@asynccontextmanager
async def _scratch(url: str, directory: Path) -> AsyncIterator[str]:
    """An empty database to restore into, gone afterwards."""
    if not url.startswith("postgresql"):
        yield f"sqlite:///{directory / 'restored.db'}"
        return
    parsed = make_url(url)
    name = f"{parsed.database}_bench_restore"
    admin = Database(url)

    async def execute(statement: str) -> None:
        async with admin.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))

    try:
        await execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await execute(f'CREATE DATABASE "{name}"')
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        await execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


async def run(rt: Runtime, progress: Progress) -> dict[str, object]:
    url = async_url(rt.settings.resolved_database_url())
    bin_dir = rt.settings.pg_bin_dir
    with tempfile.TemporaryDirectory(prefix="kaquan-bench-backup-") as tmp:
        directory = Path(tmp)
        progress("backing up …")
        backup_s = await _timed(backups.backup(url, directory / "backup", progress=_ignore, pg_bin_dir=bin_dir))
        manifest = backups.read(directory / "backup")
        progress("restoring into a scratch database …")
        async with _scratch(url, directory) as target:
            restore_s = await _timed(
                backups.restore(target, directory / "backup", replace=False, progress=_ignore, pg_bin_dir=bin_dir)
            )
            progress("the baseline …")
            baseline = await _baseline(url, directory, target, bin_dir, len(manifest.counts))
    return {
        "db": describe(url),
        "orders": manifest.orders,
        "rows": sum(manifest.counts.values()),
        "backup_mib": round(manifest.size_bytes / 2**20, 1),
        "backup_s": backup_s,
        "restore_s": restore_s,
        **baseline,
    }


async def _baseline(url: str, directory: Path, target: str, bin_dir: Path | None, tables: int) -> dict[str, object]:
    if not url.startswith("postgresql"):
        source = sqlite.path_of(url)
        copy_s = await _timed(asyncio.to_thread(shutil.copyfile, source, directory / "copy.db"))
        return {"baseline": "file copy of the database (not a consistent backup)", "baseline_copy_s": copy_s}
    conn, raw = postgres.connection(url), directory / "raw.dump"
    dump = [str(postgres.tool("pg_dump", bin_dir)), "--format=custom", "--verbose", f"--file={raw}"]
    dump_s = await _timed(postgres.run_tool([*dump, f"--dbname={conn.url}"], conn, _ignore, tables))
    scratch = postgres.connection(target)
    restore = [
        str(postgres.tool("pg_restore", bin_dir)),
        "--verbose",
        "--clean",
        "--if-exists",
        "--no-owner",
        f"--dbname={scratch.url}",
        str(raw),
    ]
    restore_s = await _timed(postgres.run_tool(restore, scratch, _ignore, tables))
    return {"baseline": "bare pg_dump -Fc and pg_restore", "baseline_dump_s": dump_s, "baseline_restore_s": restore_s}
