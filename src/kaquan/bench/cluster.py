"""The multi-machine topology of deploy/cluster/ as the process-level tests and the fault drills drive it.

`Topology.up` runs `deploy/cluster/up.sh` (HAProxy, N `kaquan serve`, one `kaquan worker`, a PostgreSQL
primary and its streaming replica, a six-node Redis Cluster, all on loopback) in a directory and on a
port range of its own, and `down` runs `down.sh`. In between, the drills break one part at a time:
kill a serve process or the worker, restart or stop PostgreSQL, stop a Redis node.
"""

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kaquan.kit.config import Settings

REDIS_NODES = 6
_SPAN = 26  # ports up.sh takes from the first: +0 … +25
_BUS_OFFSET = 10_000  # a Redis Cluster node also listens on its port + 10000


class TopologyFailed(Exception):
    """A script of deploy/cluster/ failed; the message ends with its output."""


def free_base_port() -> int:
    """A first port whose whole range is free (Redis nodes' bus ports included)."""
    for _ in range(200):
        base = secrets.choice(range(20_000, 30_000, 50))
        wanted = [*range(base, base + _SPAN), *(base + 20 + n + _BUS_OFFSET for n in range(REDIS_NODES))]
        if all(_free(port) for port in wanted):
            return base
    raise TopologyFailed("no free range of ports between 20000 and 30000")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def kaquan_command() -> str:
    """This interpreter running kaquan from wherever it is imported (an installed package or PYTHONPATH=src)."""
    return f"{shlex.quote(sys.executable)} -m kaquan"


@dataclass(frozen=True)
class Topology:
    directory: Path
    base_port: int
    serves: int
    scripts: Path
    replicas: int = 1

    @classmethod
    def up(
        cls,
        scripts: Path,
        directory: Path,
        *,
        serves: int = 2,
        replicas: int = 1,
        base_port: int | None = None,
        extra_settings: Mapping[str, str] | None = None,
    ) -> "Topology":
        topology = cls(directory, base_port or free_base_port(), serves, scripts, replicas)
        settings = "\n".join(f"{name}='{value}'" for name, value in (extra_settings or {}).items())
        try:
            topology._script("up.sh", KAQUAN_CLUSTER_SETTINGS=settings)
        except TopologyFailed:
            topology.down()
            raise
        return topology

    def down(self, *, keep: bool = False) -> None:
        self._script("down.sh", *(["--keep"] if keep else []))

    def _script(self, name: str, *args: str, **extra_env: str) -> None:
        env = {
            **os.environ,
            "KAQUAN_CLUSTER_DIR": str(self.directory),
            "KAQUAN_CLUSTER_PORT": str(self.base_port),
            "KAQUAN_SERVES": str(self.serves),
            "KAQUAN_REPLICAS": str(self.replicas),
            "KAQUAN_BIN": kaquan_command(),
            **extra_env,
        }
        done = subprocess.run(  # noqa: S603 - our own scripts
            ["/bin/bash", str(self.scripts / name), *args], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise TopologyFailed(f"{name} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    # Addresses -------------------------------------------------------------------------------------------

    @property
    def front(self) -> int:
        """HAProxy's port: where buyers and agents send every request."""
        return self.base_port

    def serve_port(self, n: int) -> int:
        return self.base_port + n

    @property
    def primary_port(self) -> int:
        return self.base_port + 10

    @property
    def replica_port(self) -> int:
        """The first replica's port: the one stale-ok reads go to."""
        return self.base_port + 11

    @property
    def replica_ports(self) -> list[int]:
        return [self.base_port + 11 + n for n in range(self.replicas)]

    @property
    def redis_ports(self) -> list[int]:
        return [self.base_port + 20 + n for n in range(REDIS_NODES)]

    def environment(self) -> dict[str, str]:
        """The settings every kaquan process of the topology runs with (the master key included)."""
        lines = (self.directory / "env").read_text().splitlines()
        pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
        env = {name: value.strip("'") for name, value in pairs}
        env["KAQUAN_MASTER_KEY"] = (self.directory / "master.key").read_text().strip()
        return env

    def settings(self, var_dir: Path) -> Settings:
        """Settings for a runtime in this process on the topology's database and Redis Cluster."""
        env = self.environment()
        fields = {name.removeprefix("KAQUAN_").lower(): value for name, value in env.items()}
        fields["var_dir"] = str(var_dir)
        return Settings.model_validate(fields)

    # Faults ------------------------------------------------------------------------------------------------

    def _pid(self, name: str) -> int:
        return int((self.directory / "run" / f"{name}.pid").read_text().split()[0])

    def kill(self, name: str) -> None:
        """SIGKILL a kaquan process (`serve-1`, `worker`) and everything it started (its session)."""
        os.killpg(self._pid(name), signal.SIGKILL)

    def start(self, name: str) -> None:
        """Start `serve-N` or `worker` again, as up.sh did."""
        args = ["worker"]
        if name.startswith("serve-"):
            args = ["serve", "--no-worker", "--port", str(self.serve_port(int(name.removeprefix("serve-"))))]
        command = [*shlex.split(kaquan_command()), *args]
        with (self.directory / "log" / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own command
                command, env={**os.environ, **self.environment()}, stdout=log, stderr=log, start_new_session=True
            )
        (self.directory / "run" / f"{name}.pid").write_text(f"{process.pid}\n")

    def pg_ctl(self, cluster: str, *args: str) -> None:
        """`pg_ctl` on `pg-primary` or `pg-replica` (deploy/cluster/pg_ctl.sh: as the database's OS user)."""
        self._script("pg_ctl.sh", cluster, *args)

    def redis_cli(self, port: int, *args: str) -> str:
        done = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True)  # noqa: S603,S607
        return done.stdout.strip()

    def redis_primaries(self) -> list[int]:
        """The ports of the Redis nodes serving slots now."""
        nodes = self.redis_cli(self.redis_ports[0], "cluster", "nodes").splitlines()
        return [int(line.split()[1].split(":")[1].split("@")[0]) for line in nodes if "master" in line.split()[2]]

    def wait_until(self, ready: Callable[[], bool], *, timeout_s: float = 60.0) -> float:
        """Seconds until `ready()` held; raises TopologyFailed past `timeout_s`."""
        started = time.monotonic()
        while not ready():
            if time.monotonic() - started > timeout_s:
                raise TopologyFailed(f"still not ready after {timeout_s:g} s")
            time.sleep(0.1)
        return time.monotonic() - started
