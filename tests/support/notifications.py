"""Reading a provider's notification in tests that expect kaquan to act on it (not to ignore it)."""

from kaquan.payments.gateway import Gateway, Notification


def read(gateway: Gateway, headers: dict[str, str], body: bytes) -> Notification:
    """What `gateway` reads from a notification kaquan acts on; fails the test on an ignored one."""
    note = gateway.verify(headers, body)
    assert isinstance(note, Notification), note
    return note
