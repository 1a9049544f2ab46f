"""A small Redis Cluster of its own for a test: three primaries on free loopback ports, no replicas.

Started from Debian's redis-server and redis-cli (`--cluster create`) in a temporary directory and shut
down afterwards; the machine's Redis on 6379 is never touched.
"""

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kaquan.bench.harness import free_port

NODES = 3


@contextlib.contextmanager
def redis_cluster(directory: Path) -> Iterator[str]:
    """Yield the URL of one node of a fresh cluster whose every slot is served."""
    ports = [free_port() for _ in range(NODES)]
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
