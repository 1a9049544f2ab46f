"""What the benchmarks and the process-level tests share: a server process, an HTTP connection, a free port.

`ServerProcess` runs the product's app factory under uvicorn as a subprocess,
as `kaquan serve --workers N` does, in a session of its own (a kill -9 takes
every worker with it). `HttpConnection` is a minimal HTTP/1.1 client on asyncio
streams, not httpx: httpx's pool spends far more per request than the server
does (measured at ~40 requests/s with 200 connections, against ~1,800/s for this
client on the same trivial endpoint), so a load generator on it would measure
itself.
"""

import asyncio
import contextlib
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from kaquan.kit.config import Settings

HOST = "127.0.0.1"
PRODUCT_APP = "kaquan.cli.app:serve_app"
READY_TIMEOUT_S = 90.0
# Every virtual buyer comes from 127.0.0.1: the per-IP throttle would otherwise answer 429 after 600 requests.
UNTHROTTLED = str(10**9)
_ALNUM = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

Progress = Callable[[str], None]
"""Where a benchmark says what it is doing (the CLI prints it); the benchmark itself prints nothing."""


def quiet(_: str) -> None:
    """A `Progress` that says nothing."""


def generated_file(count: int) -> bytes:
    """`count` random 20-character codes, one per line (random bytes mapped onto a 32-letter alphabet)."""
    raw = secrets.token_bytes(count * 20)
    table = bytes(_ALNUM[b % 32] for b in range(256))
    body = raw.translate(table)
    return b"\n".join(body[i : i + 20] for i in range(0, len(body), 20))


class ProtocolError(Exception):
    """The server's answer was not HTTP/1.1 as this client speaks it."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    retry_after: float | None = None  # seconds, when the server said when to come back


class HttpConnection:
    """One keep-alive HTTP/1.1 connection, one request at a time; reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send one request and read its answer. Connection errors propagate.

        A kept-alive connection the server closed while it sat idle (uvicorn's keep-alive timeout)
        is reopened and the request sent once more: the server never read it the first time.
        """
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        reader, writer = self._reader, self._writer
        if reader is None or writer is None or writer.is_closing() or reader.at_eof():
            reader, writer = await self.connect()
        else:
            try:
                return await self._exchange(reader, writer, message)
            except (ConnectionResetError, BrokenPipeError):
                pass
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
            await self.close()
            reader, writer = await self.connect()
        return await self._exchange(reader, writer, message)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes) -> Response:
        writer.write(message)
        head = await reader.readuntil(b"\r\n\r\n")
        status, fields = _parse_head(head)
        if "content-length" not in fields:
            raise ProtocolError("an answer without Content-Length")
        payload = await reader.readexactly(int(fields["content-length"]))
        if fields.get("connection") == "close":
            await self.close()
        retry_after = fields.get("retry-after")
        return Response(status, payload, float(retry_after) if retry_after and retry_after.isdigit() else None)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the header fields (names and values lowercased) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    return int(parts[1]), fields


@dataclass(frozen=True)
class Target:
    """A server the bench did not start (`--url`): an `http://host:port` address, no path."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> "Target":
        """`http://host[:port]` (port 80 when none); ValueError with the reason otherwise."""
        parts = urlsplit(url.strip())
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--url takes http://host:port (wrk here speaks plain HTTP), not {url!r}")
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError(f"--url names a server, without a path, query or user: {url!r}")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ValueError(f"--url has a bad port: {url!r}") from exc
        return cls(parts.hostname, port)

    async def answers(self, path: str) -> bool:
        """Whether GET `path` answers 200 there now."""
        connection = HttpConnection(self.host, self.port)
        try:
            return (await connection.request("GET", path)).status == 200
        except (OSError, asyncio.IncompleteReadError, ProtocolError):
            return False
        finally:
            await connection.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _log_file(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces; the parent pid is the second field after it.
    return int(stat.rpartition(")")[2].split()[1])


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent_of(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _peak_rss_kb(pid: int) -> int:
    """The most resident memory the process ever had (VmHWM), in KiB; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


@dataclass
class ServerProcess:
    """`kaquan.cli.app:serve_app` under uvicorn in a session of its own, as `kaquan serve --workers N` runs it."""

    process: asyncio.subprocess.Process
    port: int
    workers: int
    log_path: Path

    @classmethod
    async def start(
        cls, env: Mapping[str, str], *, port: int, log_path: Path, workers: int = 1, app: str = PRODUCT_APP
    ) -> "ServerProcess":
        """`app`: the product's app factory, or another ASGI app under the same server (a benchmark's baseline)."""
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            *(["--factory"] if app == PRODUCT_APP else []),
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--no-proxy-headers",  # as `kaquan serve`: kaquan derives the client address itself (web.security)
            "--no-server-header",  # as `kaquan serve`
            "--log-level",
            "warning",
        ]
        log = _log_file(log_path)
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                env={**env, "KAQUAN_SERVE_WORKERS": str(workers)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill -9 takes every worker with it
            )
        finally:
            log.close()
        return cls(process, port, workers, log_path)

    async def wait_ready(self, path: str, *, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until every worker can answer GET `path` with 200 (or the process dies: RuntimeError)."""
        deadline = time.monotonic() + timeout_s
        answered = 0
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {self.log_tail()}")
            connection = HttpConnection(HOST, self.port)
            try:
                status = (await connection.request("GET", path)).status
            except (OSError, asyncio.IncompleteReadError, ProtocolError):
                status = 0
            finally:
                await connection.close()
            # Fresh connections land on the workers in turn: a few answers in a row mean all are up.
            answered = answered + 1 if status == 200 else 0
            if answered >= 2 * self.workers:
                return
            await asyncio.sleep(0.1 if answered else 0.25)
        raise RuntimeError(f"the server did not answer {path} within {timeout_s:.0f} s: {self.log_tail()}")

    def pids(self) -> list[int]:
        """The server process and every process it started (the workers of `--workers N`)."""
        return _descendants(self.process.pid)

    def peak_rss_mb(self) -> float:
        """The largest peak resident memory of any one of its processes, in MB."""
        return max((_peak_rss_kb(pid) for pid in self.pids()), default=0) / 1024

    def kill(self) -> None:
        """kill -9 the server and its workers, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self, *, timeout_s: float = 30.0) -> None:
        """Shut down gracefully (queued purchases are committed first); kill what is left after `timeout_s`."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=timeout_s)
            except TimeoutError:
                self.kill()
                await self.process.wait()
        self.kill()  # workers that outlived their supervisor

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes have used so far: what a request costs, whatever else runs."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def server_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a server on the same database, keys and Redis as `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAQUAN_")}
    env |= {
        "KAQUAN_DATABASE_URL": settings.resolved_database_url(),
        "KAQUAN_VAR_DIR": str(settings.var_dir.resolve()),
        "KAQUAN_FLASH_PER_IP_PER_MINUTE": UNTHROTTLED,
    }
    for name, value in (
        ("KAQUAN_REDIS_URL", settings.redis_url),
        ("KAQUAN_MASTER_KEY", settings.master_key),
        ("KAQUAN_RETIRED_MASTER_KEYS", settings.retired_master_keys),
        ("KAQUAN_DEV_GATEWAY_SECRET", settings.dev_gateway_secret),
    ):
        if value:
            env[name] = value
    if settings.dev_gateway:
        env["KAQUAN_DEV_GATEWAY"] = "1"
    if not settings.risk_enabled:  # measuring the order paths without their risk decision
        env["KAQUAN_RISK_ENABLED"] = "0"
    return env | extra


def raise_open_files_limit() -> None:
    """One socket per virtual buyer: lift the soft limit on open files to the hard one (the server inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
