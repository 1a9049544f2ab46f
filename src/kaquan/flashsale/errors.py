"""Flash-sale errors: what a buyer or an operator got wrong, with its HTTP status and stable code."""

from kaquan.kit.errors import BadInput, Busy, Conflict, DomainError, NotFound


class EventNotFound(NotFound):
    code = "event_not_found"

    def __init__(self, event_id: int) -> None:
        super().__init__(f"no flash-sale event {event_id}", event_id=event_id)


class EventNotStarted(Conflict):
    code = "event_not_started"

    def __init__(self, event_id: int, starts_at: str) -> None:
        super().__init__(f"flash-sale event {event_id} starts at {starts_at}", event_id=event_id, starts_at=starts_at)


class EventEnded(Conflict):
    code = "event_ended"

    def __init__(self, event_id: int) -> None:
        super().__init__(f"flash-sale event {event_id} has ended", event_id=event_id)


class ChannelNotAllowed(DomainError):
    status = 403
    code = "channel_not_allowed"

    def __init__(self, event_id: int, channel: str) -> None:
        super().__init__(f"flash-sale event {event_id} is not sold in channel {channel}", channel=channel)


class InvalidQuantity(BadInput):
    code = "invalid_quantity"

    def __init__(self, quantity: int, cap: int) -> None:
        super().__init__(f"quantity must be between 1 and {cap}, got {quantity}", quantity=quantity, max=cap)


class InvalidEvent(BadInput):
    code = "invalid_event"


class NeedsRedis(Busy):
    """Several processes without a shared gate would each admit the whole allotment: refuse, never oversell."""

    code = "flash_sale_needs_redis"

    def __init__(self) -> None:
        super().__init__(
            "flash sales need KAQUAN_REDIS_URL when the server runs more than one worker process", retry_after=60
        )


class TicketNotFound(NotFound):
    """A ticket we never issued, or whose admission was lost (a crash): submitting again is safe."""

    code = "ticket_not_found"

    def __init__(self) -> None:
        super().__init__("no purchase is known under this ticket; submit the purchase again with the same request_id")
