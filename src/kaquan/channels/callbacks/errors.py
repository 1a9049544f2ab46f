from kaquan.kit.errors import Conflict, DomainError, NotFound


class CallbackUrlRefused(DomainError):
    """A callback URL that kaquan will not call: wrong scheme, credentials in it, or a non-public address."""

    status = 422
    code = "callback_url_refused"

    def __init__(self, reason: str, *, host: str | None = None) -> None:
        super().__init__(f"callback URL refused: {reason}", reason=reason, host=host)
        self.reason = reason


class EndpointNotFound(NotFound):
    code = "callback_endpoint_not_found"

    def __init__(self, agent_id: int) -> None:
        super().__init__(f"agent {agent_id} has no callback endpoint", agent_id=agent_id)


class DeliveryNotFound(NotFound):
    code = "callback_delivery_not_found"

    def __init__(self, delivery_id: int) -> None:
        super().__init__(f"no callback delivery {delivery_id}", delivery_id=delivery_id)


class ReplayRefused(Conflict):
    """A replay would go nowhere: the agent's endpoint is disabled or gone."""

    code = "callback_replay_refused"

    def __init__(self, delivery_id: int, agent_id: int, *, disabled_reason: str | None) -> None:
        if disabled_reason is None:
            message = f"agent {agent_id} has no callback endpoint; set one before replaying delivery {delivery_id}"
            reason = "no_endpoint"
        else:
            message = (
                f"agent {agent_id}'s callback endpoint is disabled ({disabled_reason}); "
                f"set its URL again to enable it before replaying delivery {delivery_id}"
            )
            reason = "endpoint_disabled"
        super().__init__(message, delivery_id=delivery_id, agent_id=agent_id, reason=reason)
