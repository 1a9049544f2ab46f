"""A PostgreSQL cluster of a test's own on this machine: initdb into a temporary directory, its own port.

Run as the `postgres` OS user when the tests run as root (PostgreSQL refuses to run as root), else as
the current user. The directory is created outside pytest's tmp_path, whose parents root keeps private.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.smtp import free_port

from kaquan.operations import backups

SERVER_TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "postgres", "psql")


def server_bin_dir() -> Path | None:
    """The directory of the PostgreSQL server binaries, or None when they are not installed."""
    try:
        found = {name: backups.tool(name).parent for name in SERVER_TOOLS}
    except backups.ToolMissing:
        return None
    return found["initdb"] if len(set(found.values())) == 1 else None


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Cluster:
    """One initdb'd data directory, started on `port`, reached over TCP on 127.0.0.1 with trust auth."""

    bin_dir: Path
    root: Path  # everything of this cluster lives under it: data, archive, base backups
    data: Path
    port: int
    family: list["Cluster"] = field(default_factory=list)  # the clusters started from this one's backups

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/kaquan"

    def run(self, tool: str, *args: str) -> str:
        command = [*_as_owner(), str(self.bin_dir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def sql(self, statement: str, database: str = "kaquan") -> str:
        return self.run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-XAtc", statement
        ).strip()

    def configure(self, **settings: str) -> None:
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            for name, value in settings.items():
                conf.write(f"{name} = '{value}'\n")

    def start(self) -> None:
        self.run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / f"{self.data.name}.log"), "-w", "-t", "60", "start"
        )

    def crash(self) -> None:
        """Stop as a power cut would: no checkpoint, no clean shutdown."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def log(self) -> str:
        path = self.root / f"{self.data.name}.log"
        return path.read_text() if path.exists() else ""

    def wait_until(self, query: str, expected: str, *, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.sql(query) == expected:
                    return
            except RuntimeError:
                pass  # still starting or recovering
            if time.monotonic() > deadline:
                raise TimeoutError(f"{query!r} never gave {expected!r}; log:\n{self.log()[-2000:]}")
            time.sleep(0.1)

    def base_backup(self, target: Path) -> None:
        """pg_basebackup of the running cluster into `target`, with the WAL it needs, after a fast checkpoint."""
        self.run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-D",
            str(target),
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )

    def recover(self, base: Path, *, target_time: str) -> "Cluster":
        """A new cluster from the base backup `base`, its archived WAL replayed up to `target_time`, promoted."""
        restored = Cluster(self.bin_dir, self.root, self.root / "restored", free_port())
        self.family.append(restored)
        subprocess.run([*_as_owner(), "cp", "-a", str(base), str(restored.data)], check=True, timeout=60)  # noqa: S603
        restored.configure(
            port=str(restored.port),
            restore_command=f"cp {self.root / 'archive'}/%f %p",
            recovery_target_time=target_time,
            recovery_target_action="promote",
            archive_mode="off",
        )
        signal = restored.data / "recovery.signal"
        signal.touch()
        restored.own(signal)
        restored.start()
        restored.wait_until("SELECT pg_is_in_recovery()", "f")
        return restored

    def own(self, *paths: Path) -> None:
        """Hand files this (root) test wrote to the cluster's OS user."""
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in paths:
                os.chown(path, owner.pw_uid, owner.pw_gid)


@contextmanager
def new_cluster(bin_dir: Path) -> Iterator[Cluster]:
    """An initdb'd, not yet started cluster with WAL archiving to `root/archive`; stopped and removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="kaquan-pitr-"))
    archive = root / "archive"
    archive.mkdir()
    cluster = Cluster(bin_dir, root, root / "data", free_port())
    cluster.own(root, archive)
    try:
        cluster.run("initdb", "-D", str(cluster.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        cluster.configure(
            port=str(cluster.port),
            listen_addresses="127.0.0.1",
            unix_socket_directories=str(root),
            wal_level="replica",
            archive_mode="on",
            archive_command=f"test ! -f {archive}/%f && cp %p {archive}/%f",
            fsync="off",  # a test's throwaway cluster; never in production
        )
        yield cluster
    finally:
        for each in [cluster, *cluster.family]:
            with suppress(RuntimeError):
                each.stop()
        shutil.rmtree(root, ignore_errors=True)
