"""A small Redis Cluster of its own for a test: three primaries on free loopback ports, no replicas.

Started from Debian's redis-server and redis-cli (`--cluster create`) in a temporary directory and shut
down afterwards; the machine's Redis on 6379 is never touched.
"""

import contextlib
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

NODES = 3
BUS_OFFSET = 10_000  # a node also listens on its port + 10000 for the cluster bus


@contextlib.contextmanager
def redis_cluster(directory: Path) -> Iterator[str]:
    """Yield the URL of one node of a fresh cluster whose every slot is served."""
    ports = _free_ports(NODES)
    try:
        for port in ports:
            data = directory / f"redis-{port}"
            data.mkdir(parents=True)
            options = ["--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", str(data)]
            options += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--save", ""]
            options += ["--appendonly", "no", "--logfile", str(data / "redis.log")]
            subprocess.run(["redis-server", *options], check=True)  # noqa: S603,S607 - Debian's redis-server
        _until(lambda: all(_cli(port, "ping") == "PONG" for port in ports))
        subprocess.run(  # noqa: S603
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],  # noqa: S607
            check=True,
            capture_output=True,
        )
        _until(lambda: all("cluster_state:ok" in _cli(port, "cluster", "info") for port in ports))
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for port in ports:
            subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)  # noqa: S603,S607


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True)  # noqa: S603,S607
    return done.stdout.strip()


def _until(ready: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError("the Redis Cluster did not come up")
        time.sleep(0.05)


def _free_ports(count: int) -> list[int]:
    """Ports that are free together with their bus ports (an ephemeral port + 10000 may pass 65535)."""
    found: list[int] = []
    while len(found) < count:
        port = secrets.choice(range(20_000, 30_000))
        if port not in found and _free(port) and _free(port + BUS_OFFSET):
            found.append(port)
    return found


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
