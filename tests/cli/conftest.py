"""CLI fixtures: `kaquan`, the command on a database of each test's own (defined in tests/support/cli.py)."""

from tests.support.cli import kaquan, postgres_admin, unmigrated_kaquan

__all__ = ["kaquan", "postgres_admin", "unmigrated_kaquan"]
