"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that keeps what it receives, and can be down.

`Mailbox.down()` knows its port before it listens, so a shop can be pointed at a
server that refuses connections and later, after `start()`, accepts them.
"""

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from kaquan.kit.config import Settings


@dataclass
class Mailbox:
    port: int
    received: list[EmailMessage] = field(default_factory=list)
    _controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, ready_timeout=5)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        return [mail for mail in self.received if mail["To"] == address]

    def wait_for(self, count: int, *, timeout_s: float = 5.0) -> list[EmailMessage]:
        """The mails received once there are `count` (SMTP hands them over on the server's own thread)."""
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)

    def point(self, settings: Settings) -> None:
        """Make `settings` send mail here, in plain SMTP (no TLS on a local test server)."""
        settings.smtp_host, settings.smtp_port, settings.smtp_tls = "127.0.0.1", self.port, "none"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def mailbox(*, up: bool = True) -> Iterator[Mailbox]:
    box = Mailbox(free_port())
    if up:
        box.start()
    try:
        yield box
    finally:
        box.stop()
