"""PostgreSQL backups by pg_dump (custom format) and restores by pg_restore, found beside the server.

kaquan looks for the tools in `KAQUAN_PG_BIN_DIR` when it is set (there only), else in the newest
`/usr/lib/postgresql/*/bin` (Debian's layout: pg_dump must be at least as new as the server), then on PATH. The password
never reaches a command line (where `ps` shows it): it goes to the tool as PGPASSWORD.
"""

import asyncio
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from kaquan.kit.db import async_url
from kaquan.operations.backups.errors import ToolFailed, ToolMissing

Progress = Callable[[int, int], None]
DATA_FILE = "kaquan.dump"
DEBIAN_BIN_DIRS = "/usr/lib/postgresql/*/bin"
_TABLE_LINE = re.compile(r"(dumping contents of table|processing data for table) ")
_KEPT_LINES = 12


@dataclass(frozen=True)
class Connection:
    """What libpq's tools need to reach the database: a URL without its password, and the password."""

    url: str
    password: str | None

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def connection(url: str) -> Connection:
    parsed = make_url(async_url(url))
    plain = parsed.set(drivername="postgresql", password=None)
    return Connection(plain.render_as_string(hide_password=False), parsed.password)


def tool(name: str, bin_dir: Path | None = None) -> Path:
    """The path of pg_dump, pg_restore, pg_basebackup…; ToolMissing names where it looked."""
    if bin_dir is not None:  # configured: looked for there only, never a surprise from elsewhere
        if (bin_dir / name).is_file():
            return bin_dir / name
        raise ToolMissing(f"{name} not found in {bin_dir} (KAQUAN_PG_BIN_DIR)", tool=name)
    looked: list[str] = []
    for directory in sorted(Path("/").glob(DEBIAN_BIN_DIRS.lstrip("/")), key=_major, reverse=True):
        looked.append(str(directory))
        if (directory / name).is_file():
            return directory / name
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise ToolMissing(
        f"{name} not found (looked in {', '.join(looked) or 'no PostgreSQL bin directory'} and on PATH): install"
        f" the PostgreSQL client (Debian: apt-get install postgresql-client) or set KAQUAN_PG_BIN_DIR",
        tool=name,
    )


def _major(directory: Path) -> int:
    version = directory.parent.name
    return int(version) if version.isdigit() else 0


async def run_tool(command: list[str], conn: Connection, progress: Progress, total: int) -> None:
    """Run pg_dump or pg_restore --verbose, counting the tables it reports as progress."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=conn.environment(),
    )
    if process.stderr is None:
        raise RuntimeError("the tool's standard error is not a pipe")
    done = 0
    last: list[str] = []
    async for raw in process.stderr:
        line = raw.decode(errors="replace").rstrip()
        if _TABLE_LINE.search(line):
            done += 1
            progress(min(done, total), total)
        else:
            last = [*last, line][-_KEPT_LINES:]
    status = await process.wait()
    if status != 0:
        problems = [line for line in last if "error" in line.lower()] or last
        raise ToolFailed(
            f"{Path(command[0]).name} failed (exit {status}): " + " | ".join(problems[-3:]),
            tool=Path(command[0]).name,
            exit_status=status,
        )
    progress(total, total)


async def dump(
    pg_dump: Path, conn: Connection, target: Path, *, snapshot: str, progress: Progress, tables: int
) -> None:
    command = [
        str(pg_dump),
        "--format=custom",
        "--verbose",
        "--no-owner",
        "--no-privileges",
        f"--snapshot={snapshot}",
        f"--file={target}",
        f"--dbname={conn.url}",
    ]
    await run_tool(command, conn, progress, tables)


async def restore(
    pg_restore: Path, conn: Connection, source: Path, *, replace: bool, progress: Progress, tables: int
) -> None:
    command = [
        str(pg_restore),
        "--verbose",
        "--no-owner",
        "--no-privileges",
        "--single-transaction",  # all or nothing: a failed restore leaves the database as it was
        "--exit-on-error",
        *(["--clean", "--if-exists"] if replace else []),
        f"--dbname={conn.url}",
        str(source),
    ]
    await run_tool(command, conn, progress, tables)
