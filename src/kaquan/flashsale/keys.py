"""Names for one buyer request: the buyer, its device and address as the gate counts them, the purchase key, the ticket.

The purchase key is derived from (device, buyer, request id), so a retry from the
same device maps to the same key everywhere: the gate's request state, the purchase
row and the order's idempotency key. The same (buyer, request id) sent from another
device is another request altogether: it never answers with the first one's order.
A ticket adds a server-keyed tag to (event, key, device): it reveals the won order
(lookup secret included), so it must be neither guessable nor usable by anyone but
the device it was issued to (a ticket copied out of an access log opens nothing).
"""

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from kaquan.kit.crypto import keyed_hash, same_digest

_TAG_BYTES = 16
# A device token a client chose itself must be as hard to guess as the ones the server mints.
_DEVICE_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,128}")


def normal_buyer(buyer: str) -> str:
    """Buyer ids compare without surrounding space and case: `A@x.com ` is `a@x.com`."""
    return buyer.strip().lower()


def buyer_tag(buyer: str) -> str:
    """The buyer as the gate counts it: a digest, so no phone number or email sits in Redis."""
    return hashlib.sha256(f"buyer\n{buyer}".encode()).hexdigest()[:32]


def is_device_token(token: str) -> bool:
    return _DEVICE_TOKEN.fullmatch(token) is not None


def device_tag(token: str) -> str:
    """The device as the gate and the purchase rows know it: a digest of its token, never the token."""
    return hashlib.sha256(f"device\n{token}".encode()).hexdigest()[:32]


@lru_cache(maxsize=4096)
def ip_tag(ip: str) -> str:
    """The address as the gate counts it. IPv6 counts per /64: one subscriber holds a whole /64.

    Cached: parsing the address costs more than the rest of a sold-out answer's checks, and a sale's
    buyers send many requests each from few addresses.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        network = ip
    else:
        network = str(ipaddress.ip_network(f"{address}/64", strict=False)) if address.version == 6 else str(address)
    return hashlib.sha256(f"ip\n{network}".encode()).hexdigest()[:32]


def purchase_key(buyer: str, request_id: str, device: str | None = None) -> str:
    """`device` is the device tag; None for in-process callers, which no other client can replay."""
    scope = f"purchase\n{buyer}\n{request_id}" if device is None else f"purchase2\n{device}\n{buyer}\n{request_id}"
    return hashlib.sha256(scope.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TicketRef:
    event_id: int
    key: str


class Tickets:
    """Issues and opens tickets `<event>.<key>.<tag>`; any process holding the same key can open them."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, event_id: int, key: str, device: str | None) -> str:
        return keyed_hash(self._key, f"ticket\n{event_id}\n{key}\n{device or ''}")[:_TAG_BYTES].hex()

    def issue(self, event_id: int, key: str, device: str | None = None) -> str:
        return f"{event_id}.{key}.{self._tag(event_id, key, device)}"

    def open(self, ticket: str, device: str | None = None) -> TicketRef | None:
        """The (event, key) a ticket names, or None for anything we did not issue to this device."""
        event, _, rest = ticket.partition(".")
        key, _, tag = rest.partition(".")
        if not event.isdigit() or len(event) > 12 or not key or len(key) > 64:
            return None
        if not same_digest(tag.encode(), self._tag(int(event), key, device).encode()):
            return None
        return TicketRef(int(event), key)
