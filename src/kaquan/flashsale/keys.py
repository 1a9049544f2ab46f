"""Names for one buyer request: the buyer as the gate knows it, the purchase key, and the ticket.

The purchase key is derived from (buyer, request id), so a retried request maps to
the same key everywhere: the gate's request state, the purchase row and the order's
idempotency key. A ticket adds a server-keyed tag to (event, key): it reveals the
won order (lookup secret included), so it must not be guessable from the buyer id.
"""

import hashlib
from dataclasses import dataclass

from kaquan.kit.crypto import keyed_hash, same_digest

_TAG_BYTES = 16


def normal_buyer(buyer: str) -> str:
    """Buyer ids compare without surrounding space and case: `A@x.com ` is `a@x.com`."""
    return buyer.strip().lower()


def buyer_tag(buyer: str) -> str:
    """The buyer as the gate counts it: a digest, so no phone number or email sits in Redis."""
    return hashlib.sha256(f"buyer\n{buyer}".encode()).hexdigest()[:32]


def purchase_key(buyer: str, request_id: str) -> str:
    return hashlib.sha256(f"purchase\n{buyer}\n{request_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TicketRef:
    event_id: int
    key: str


class Tickets:
    """Issues and opens tickets `<event>.<key>.<tag>`; any process holding the same key can open them."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, event_id: int, key: str) -> str:
        return keyed_hash(self._key, f"ticket\n{event_id}\n{key}")[:_TAG_BYTES].hex()

    def issue(self, event_id: int, key: str) -> str:
        return f"{event_id}.{key}.{self._tag(event_id, key)}"

    def open(self, ticket: str) -> TicketRef | None:
        """The (event, key) a ticket names, or None for anything we did not issue."""
        event, _, rest = ticket.partition(".")
        key, _, tag = rest.partition(".")
        if not event.isdigit() or len(event) > 12 or not key or len(key) > 64:
            return None
        if not same_digest(tag.encode(), self._tag(int(event), key).encode()):
            return None
        return TicketRef(int(event), key)
