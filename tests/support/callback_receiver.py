"""A real HTTP receiver for callbacks: a plain asyncio server on 127.0.0.1, scripted to fail.

It owns a bound socket from the start, so its URL is known before it listens:
until `start()`, connections to it are refused (a receiver that is down).
Every request is recorded and its signature verified with the secret of its
path; `accepted` lists the webhook ids it answered 2xx, in order.
"""

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kaquan.channels.callbacks.signing import InvalidSignature, verify_signature
from kaquan.kit import clock

Answer = Literal["ok", "error", "gone", "timeout", "reset"]
STATUS = {"ok": 200, "error": 500, "gone": 410}


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answer: Answer
    at: datetime = field(default_factory=clock.now)

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


def seeded(seed: int, weights: dict[Answer, float]) -> Callable[[str], Answer]:
    """Answers drawn at random (reproducibly) with the given weights, whatever the path."""
    draw = random.Random(seed)
    answers, chances = list(weights), list(weights.values())
    return lambda _path: draw.choices(answers, chances)[0]


@dataclass
class Receiver:
    answer: Callable[[str], Answer] = lambda _path: "ok"
    secrets: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    bad_signatures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._server: asyncio.Server | None = None

    def url(self, path: str, *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, sock=self._socket)

    async def stop(self) -> None:
        if self._server is None:
            self._socket.close()
            return
        self._server.close()
        await self._server.wait_closed()

    def requests_for(self, event_id: str) -> list[Received]:
        return [request for request in self.requests if request.event_id == event_id]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the sender hung up first (it gave up waiting)
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        path = request_line.split(" ")[1]
        headers = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        answer = self.answer(path)
        self.requests.append(Received(path, headers, body, answer))
        try:
            verify_signature(self.secrets[path], headers, body)
        except (InvalidSignature, KeyError) as exc:
            self.bad_signatures.append(f"{path}: {exc}")
        if answer == "timeout":
            # Say nothing until the sender gives up and hangs up.
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(), timeout=30)
        elif answer == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            if answer == "ok":
                self.accepted.append(headers["webhook-id"])
            status = STATUS[answer]
            writer.write(f"HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
