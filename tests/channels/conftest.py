"""The CLI fixture `kaquan` (defined in tests/support/cli.py), for the channel tests that drive the command line."""

from tests.support.cli import kaquan, postgres_admin, unmigrated_kaquan

__all__ = ["kaquan", "postgres_admin", "unmigrated_kaquan"]
