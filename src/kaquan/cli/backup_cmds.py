"""`kaquan backup` and `kaquan restore`: the database to a backup directory and back (docs/operations.md)."""

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from kaquan.cli.common import console, errors, report
from kaquan.cli.confirm import YesFlag, confirmed
from kaquan.kit.config import Settings, get_settings
from kaquan.kit.crypto import KeyRing, decode_master_key, decode_retired_master_keys
from kaquan.kit.db import describe
from kaquan.kit.errors import DomainError
from kaquan.operations import backups

T = TypeVar("T")


def _with_progress(label: str, work: Callable[[Callable[[int, int], None]], Coroutine[Any, Any, T]]) -> T:
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            return asyncio.run(work(progress))
        except backups.TargetNotEmpty:
            bar.stop()
            raise
        except DomainError as exc:
            bar.stop()
            report(exc)
            raise SystemExit(1) from None


def backup(
    directory: Annotated[Path, typer.Argument(help="a new directory for the backup (its manifest and data file)")],
) -> None:
    """Back the database up while it serves: SQLite by its online backup API, PostgreSQL by pg_dump.

    The master key is never in the backup: keep it (KAQUAN_MASTER_KEY) elsewhere, or the backup opens no code.
    """
    settings = get_settings()
    url = settings.resolved_database_url()
    manifest = _with_progress(
        "backing up",
        lambda progress: backups.backup(url, directory, progress=progress, pg_bin_dir=settings.pg_bin_dir),
    )
    console.print(f"backed up {describe(url)} to {directory}", highlight=False, soft_wrap=True)
    console.print(
        f"  {manifest.kind} · schema {manifest.schema_revision} · taken {manifest.taken_at} · kaquan"
        f" {manifest.kaquan_version}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"  {_size(manifest.size_bytes)} · {manifest.orders} orders · {sum(manifest.counts.values())} rows in"
        f" {len(manifest.counts)} tables · sha256 {manifest.sha256}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "  the master key is not in the backup: a restore needs the key with id"
        f" {', '.join(manifest.master_key_ids) or '(none stored yet)'}",
        highlight=False,
        soft_wrap=True,
    )


def restore(
    directory: Annotated[Path, typer.Argument(help="a directory `kaquan backup` wrote")],
    yes: YesFlag = False,
) -> None:
    """Restore a backup into the configured database; replacing a database that holds data asks first (or --yes).

    Stop `kaquan serve` and `kaquan worker` first: a restore rewinds the database to the backup's moment.
    """
    settings = get_settings()
    url = settings.resolved_database_url()

    def restoring(replace: bool) -> backups.Restored:
        return _with_progress(
            "restoring",
            lambda progress: backups.restore(
                url, directory, replace=replace, progress=progress, pg_bin_dir=settings.pg_bin_dir
            ),
        )

    try:
        done = restoring(yes)
    except backups.TargetNotEmpty as exc:
        confirmed(f"replace the {exc.details['rows']} rows of {describe(url)} with the backup", yes=False)
        done = restoring(True)
    manifest = done.manifest
    replaced = "replacing what the database held" if done.replaced else "into an empty database"
    console.print(f"restored {directory} into {describe(url)}, {replaced}", highlight=False, soft_wrap=True)
    console.print(
        f"  the database is as it was at {manifest.taken_at}: {manifest.orders} orders,"
        f" {sum(manifest.counts.values())} rows in {len(manifest.counts)} tables, every count checked",
        highlight=False,
        soft_wrap=True,
    )
    if done.migrated:
        console.print(
            f"  migrated from the backup's schema {manifest.schema_revision} to this kaquan's", highlight=False
        )
    missing = _missing_master_keys(settings, manifest.master_key_ids)
    if missing:
        errors.print(
            f"warning: the configured master key(s) cannot open the restored keys; they need the master key with"
            f" id {', '.join(missing)} (set KAQUAN_MASTER_KEY, or add it to KAQUAN_RETIRED_MASTER_KEYS)",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        "  orders placed after the backup are gone from this database: reconcile with the payment providers"
        " (`kaquan reconcile`) before reopening the shop",
        highlight=False,
        soft_wrap=True,
    )


def _missing_master_keys(settings: Settings, needed: list[str]) -> list[str]:
    """The ids of `needed` that no configured master key (primary or retired) has; never creates a key."""
    primary = settings.master_key
    if primary is None:
        key_file = settings.var_dir / "master.key"
        primary = key_file.read_text() if key_file.is_file() else None
    if primary is None:
        return needed
    ring = KeyRing(decode_master_key(primary), decode_retired_master_keys(settings.retired_master_keys))
    known = {key_id.hex() for key_id in ring.key_ids}
    return [key_id for key_id in needed if key_id not in known]


def _size(size_bytes: int) -> str:
    size = float(size_bytes)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
