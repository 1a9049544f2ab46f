"""SQLite backups through SQLite's online backup API, which copies a live database page by page.

The source connection holds one read transaction for the whole copy, so every page comes from the
same snapshot: writers keep committing (the database runs in WAL mode) and the copy is the database
as it was when the backup began, never a mix. A restore runs the same API the other way, into the
target file, so a stale `-wal` file beside it cannot survive into the restored database.
"""

import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from kaquan.kit.db import async_url

Progress = Callable[[int, int], None]  # (done, total): pages here, tables for PostgreSQL
PAGES_PER_STEP = 1024
DATA_FILE = "kaquan.db"


def path_of(url: str) -> Path:
    database = make_url(async_url(url)).database
    if not database or database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def copy(source: Path, target: Path, progress: Progress, *, busy_timeout_s: float = 30.0) -> None:
    """Copy the SQLite database `source` into `target` (created or overwritten), one snapshot of it."""
    reader = sqlite3.connect(source, timeout=busy_timeout_s, isolation_level=None)
    writer = sqlite3.connect(target, timeout=busy_timeout_s)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
        reader.backup(
            writer,
            pages=PAGES_PER_STEP,
            progress=lambda _status, remaining, total: progress(total - remaining, total),
        )
        reader.execute("COMMIT")
    finally:
        writer.close()
        reader.close()
