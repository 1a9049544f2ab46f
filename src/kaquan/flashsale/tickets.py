"""Tickets for purchases still queued: issued and opened under a key every process shares (`flashsale.tickets`)."""

import asyncio

from kaquan.flashsale.committer import Admitted
from kaquan.flashsale.keys import TicketRef, Tickets, device_tag
from kaquan.kit.crypto import KeyRing
from kaquan.kit.db import Database
from kaquan.kit.keys import named_key


class TicketDesk:
    """Issues a queued purchase its ticket and opens tickets, loading the shared key on first use."""

    def __init__(self, db: Database, keyring: KeyRing) -> None:
        self.db = db
        self._keyring = keyring
        self._tickets: Tickets | None = None
        self._loading = asyncio.Lock()  # a storm's first tickets load the key once, not once each

    async def issue(self, item: Admitted) -> str:
        return (await self._issuer()).issue(item.event_id, item.key, item.device_tag)

    async def open(self, ticket: str, device: str | None) -> TicketRef | None:
        """The purchase a ticket names, or None for anything not issued to this device (`device`: its token)."""
        return (await self._issuer()).open(ticket, device_tag(device) if device is not None else None)

    async def _issuer(self) -> Tickets:
        if self._tickets is None:
            async with self._loading:
                if self._tickets is None:
                    async with self.db.transaction() as session:
                        key = await named_key(self.db, session, self._keyring, "flashsale.tickets")
                    self._tickets = Tickets(key)
        return self._tickets
