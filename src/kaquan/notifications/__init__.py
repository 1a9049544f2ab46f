"""Notifications: telling a shop buyer that an order's codes are ready, or that money went back.

`order.delivered` and `order.refunded` outbox events (written in the transaction
that delivered or refunded the order) are handled here by the worker: the notice
goes to the order's contact, in the language the buyer used when ordering, by
e-mail (SMTP) or, for a phone number, to the SMS webhook (signed, SSRF-guarded).
A failure is retried with the outbox's backoff; `models.NoticeSent` makes sure
one event sends one message however often the worker runs it. See docs/buyers.md.
"""

from kaquan.notifications.messages import Notice, delivered_notice, refunded_notice

__all__ = ["Notice", "delivered_notice", "refunded_notice"]
