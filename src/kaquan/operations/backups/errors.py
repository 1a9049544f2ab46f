"""What can stop a backup or a restore, each with the code a script can act on."""

from kaquan.kit.errors import BadInput, Conflict, DomainError


class ToolMissing(DomainError):
    """pg_dump or pg_restore is not installed where kaquan looks for it."""

    status = 500
    code = "backup_tool_missing"


class ToolFailed(DomainError):
    """pg_dump or pg_restore ran and failed; its last lines of output say why."""

    status = 500
    code = "backup_tool_failed"


class BadBackup(BadInput):
    """The backup is not one: no manifest, a checksum that does not match, an unknown format."""

    code = "bad_backup"


class SchemaTooNew(Conflict):
    """The backup was taken by a newer kaquan, whose migrations this one does not know."""

    code = "backup_schema_newer"


class WrongDatabaseKind(BadInput):
    """An SQLite backup restored into PostgreSQL or the other way round."""

    code = "backup_kind_mismatch"


class TargetNotEmpty(Conflict):
    """The database to restore into holds data; overwriting it needs --yes."""

    code = "database_not_empty"


class TargetExists(Conflict):
    """The backup's directory exists and is not empty: a backup never overwrites another."""

    code = "backup_exists"
