"""Risk's refusals, each with its status and machine-readable code."""

from typing import Any

from kaquan.kit.errors import BadInput, Conflict, DomainError, NotFound


class RiskDeclined(DomainError):
    """The decision point refused the request. The reasons stay in the recorded decision: telling a bot
    which rule it tripped would teach it to step around it."""

    status = 403
    code = "risk_declined"

    def __init__(self) -> None:
        super().__init__("this request was declined by risk control; contact support if you think this is wrong")


class ChallengeRequired(DomainError):
    """The request goes through once the client solves the challenge in the details and sends it again
    with the solution (the `X-Risk-Solution` header, or the `risk_solution` form field)."""

    status = 403
    code = "challenge_required"

    def __init__(self, challenge: dict[str, Any], *, failed: str | None = None) -> None:
        super().__init__("solve the challenge and send the request again with its solution", challenge=challenge)
        if failed is not None:
            self.details["previous_solution"] = failed


class InvalidRule(BadInput):
    """A rule expression that does not parse, or names something that is not a feature; `position` is the
    0-based offset of the offending character, `column` the same counted from 1."""

    code = "invalid_rule"

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(f"column {position + 1}: {message}", position=position, column=position + 1)


class RuleNeedsConfirmation(Conflict):
    """Switching the rule on would decline more of the last week's honest decisions than the merchant allows
    (`KAQUAN_RISK_RULE_HONEST_DECLINE_BP`); it goes on only when asked again with confirmation."""

    code = "risk_rule_needs_confirmation"

    def __init__(self, rule: str, *, hits: int, examined: int, limit_bp: int) -> None:
        super().__init__(
            f"rule {rule!r} would have declined {hits} of the last week's {examined} approved decisions,"
            f" over the {limit_bp / 100:g} % allowed; switch it on with confirmation to go ahead",
            rule=rule,
            hits=hits,
            examined=examined,
            limit_bp=limit_bp,
        )


class RuleNotFound(NotFound):
    code = "risk_rule_not_found"

    def __init__(self, rule: str) -> None:
        super().__init__(f"no risk rule {rule!r}", rule=rule)


class ListEntryNotFound(NotFound):
    code = "risk_list_entry_not_found"

    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"no {kind} entry {value!r} on the risk lists", kind=kind)


class NotEnoughHistory(Conflict):
    """Training needs enough labelled decisions, with both frauds and legitimate ones before and after the split."""

    code = "risk_not_enough_history"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(f"cannot train a risk model: {message}", **details)


class ModelNotFound(NotFound):
    code = "risk_model_not_found"

    def __init__(self, version: int) -> None:
        super().__init__(f"no risk model version {version}", version=version)


class ModelNotPromotable(Conflict):
    code = "risk_model_not_promotable"

    def __init__(self, version: int, status: str) -> None:
        super().__init__(f"risk model version {version} is {status} already", version=version, status=status)


class ModelUnloadable(Conflict):
    """A stored model whose trees kaquan cannot load (corrupt or of another shape): promoting it would only make
    every decision fall back to the rules."""

    code = "risk_model_unloadable"

    def __init__(self, version: int, why: str) -> None:
        super().__init__(f"risk model version {version} cannot be loaded: {why}", version=version, why=why)
