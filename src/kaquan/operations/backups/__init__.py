"""Backups and restores of kaquan's database (docs/operations.md, "Back up and restore").

SQLite through its online backup API, PostgreSQL through pg_dump's custom format; each backup is a
directory with a manifest (schema revision, time, kaquan version, rows per table, checksum) and never
holds the master key.
"""

from kaquan.operations.backups.errors import (
    BadBackup,
    SchemaTooNew,
    TargetExists,
    TargetNotEmpty,
    ToolFailed,
    ToolMissing,
    WrongDatabaseKind,
)
from kaquan.operations.backups.manifest import Manifest, read
from kaquan.operations.backups.postgres import tool
from kaquan.operations.backups.service import Restored, backup, restore

__all__ = [
    "BadBackup",
    "Manifest",
    "Restored",
    "SchemaTooNew",
    "TargetExists",
    "TargetNotEmpty",
    "ToolFailed",
    "ToolMissing",
    "WrongDatabaseKind",
    "backup",
    "read",
    "restore",
    "tool",
]
