"""The storm's ticket holders: every ticket wrk writes down is polled from its device until it is answered."""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kaquan.bench.tickets import TicketHolders

QUEUED = (202, {"result": "queued", "ticket": "x"})


class TicketServer:
    """Answers `GET /api/flash/tickets/{ticket}` with each ticket's answers in turn; records what it was asked."""

    def __init__(self, answers: dict[str, list[tuple[int, dict[str, str]]]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str]] = []  # (ticket, device)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            lines = head.decode().split("\r\n")
            ticket = lines[0].split()[1].rsplit("/", 1)[1]
            device = next(line.split(": ", 1)[1] for line in lines if line.lower().startswith("x-device-token"))
            self.seen.append((ticket, device))
            status, body = self.answers[ticket].pop(0)
            payload = json.dumps(body).encode()
            retry = "Retry-After: 0\r\n" if status == 202 else ""
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n{retry}\r\n".encode() + payload)
            await writer.drain()
        writer.close()


@pytest.fixture
async def started() -> AsyncIterator[tuple[TicketServer, int]]:
    server = TicketServer({})
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    yield server, port
    listening.close()
    await listening.wait_closed()


async def test_each_ticket_is_polled_from_its_device_until_it_is_answered(
    started: tuple[TicketServer, int], tmp_path: Path
) -> None:
    server, port = started
    server.answers = {
        "t1": [QUEUED, QUEUED, (200, {"result": "won", "order_no": "F1"})],
        "t2": [(200, {"result": "won", "order_no": "F2"})],
        "t3": [(404, {"error": "ticket_not_found"})],
    }
    holders = TicketHolders("127.0.0.1", port, tmp_path / "tickets")
    holders.start()
    written = tmp_path / "tickets.1"
    with written.open("w") as file:
        file.write("t1 device-one 0\nt2 device-two 0\nt3 dev")  # the third line is still being written
        file.flush()
        await asyncio.sleep(0.05)
        file.write("ice-three 0\n")

    polls = await holders.finish(within_s=5)

    assert sorted(server.seen) == sorted([("t1", "device-one")] * 3 + [("t2", "device-two"), ("t3", "device-three")])
    assert (polls.tickets, polls.polls, polls.unanswered, polls.errors) == (3, 5, 0, 0)
    assert polls.answers == {"queued": 2, "won": 2, "http_404": 1}
    assert sorted(polls.order_numbers) == ["F1", "F2"]
    assert (polls.with_status(4), polls.with_status(5)) == (1, 0)
    assert len(polls.latencies_ms) == 5 and polls.percentile_ms(0.99) is not None


async def test_a_ticket_still_queued_when_time_is_up_is_counted_unanswered(
    started: tuple[TicketServer, int], tmp_path: Path
) -> None:
    server, port = started
    server.answers = {"t1": [QUEUED] * 1_000_000}
    holders = TicketHolders("127.0.0.1", port, tmp_path / "tickets")
    holders.start()
    (tmp_path / "tickets.1").write_text("t1 device-one 0\n")

    polls = await holders.finish(within_s=0.2)

    assert (polls.tickets, polls.unanswered) == (1, 1)
    assert polls.polls >= 1 and set(polls.answers) == {"queued"}


async def test_no_tickets_no_polls(tmp_path: Path) -> None:
    holders = TicketHolders("127.0.0.1", 9, tmp_path / "tickets")
    holders.start()

    polls = await holders.finish(within_s=1)

    assert (polls.tickets, polls.polls, polls.unanswered) == (0, 0, 0)
    assert polls.percentile_ms(0.99) is None
