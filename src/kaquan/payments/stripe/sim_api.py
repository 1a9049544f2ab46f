"""Stripe's API conventions as the simulator answers them: its error shapes, its list pages (newest first,
`created` filters, `starting_after` cursors) and the part of its Search API query language kaquan uses."""

from typing import Any

from kaquan.payments.stripe import protocol


class StripeError(Exception):
    """A request Stripe refuses, with the HTTP status and body it answers."""

    def __init__(self, status: int, kind: str, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = protocol.error_body(kind, message, code=code, param=param)


def invalid(message: str, *, code: str | None = None, param: str | None = None, status: int = 400) -> StripeError:
    return StripeError(status, "invalid_request_error", message, code=code, param=param)


def missing(kind: str, object_id: str, *, param: str | None = None) -> StripeError:
    status = 400 if param else 404
    return invalid(f"No such {kind}: '{object_id}'", code="resource_missing", param=param, status=status)


def limit_of(params: dict[str, Any]) -> int:
    raw = str(params.get("limit", "10"))
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise invalid("limit must be an integer between 1 and 100", param="limit")
    return int(raw)


def page_of(items: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    """One page of a Stripe list: newest first, `created` filters, `starting_after` cursor, `has_more`."""
    created = params.get("created")
    bounds = created if isinstance(created, dict) else ({"eq": created} if created else {})
    tests = {
        "gt": lambda at, bound: at > bound,
        "gte": lambda at, bound: at >= bound,
        "lt": lambda at, bound: at < bound,
        "lte": lambda at, bound: at <= bound,
        "eq": lambda at, bound: at == bound,
    }
    for name, bound in bounds.items():
        if name not in tests or not str(bound).isdigit():
            raise invalid("created takes gt, gte, lt, lte as unix timestamps", param="created")
        items = [item for item in items if tests[name](item["created"], int(bound))]
    items = sorted(items, key=lambda item: (item["created"], item["id"]), reverse=True)
    after = params.get("starting_after")
    if after is not None:
        position = next((index for index, item in enumerate(items) if item["id"] == after), None)
        if position is None:
            raise missing("object", str(after), param="starting_after")
        items = items[position + 1 :]
    limit = limit_of(params)
    return {"object": "list", "url": url, "has_more": len(items) > limit, "data": items[:limit]}


def search_clauses(query: str) -> list[tuple[str, str]]:
    """The `field:'value'` clauses of a Search API query joined by AND (what the simulator understands)."""
    clauses = []
    for clause in query.split(" AND "):
        name, colon, quoted = clause.strip().partition(":")
        if not colon or len(quoted) < 2 or quoted[0] != "'" or quoted[-1] != "'":
            raise invalid(f"Unsupported search query: {query!r}", param="query")
        clauses.append((name, quoted[1:-1].replace("\\'", "'").replace("\\\\", "\\")))
    return clauses


def matches(intent: dict[str, Any], name: str, value: str) -> bool:
    if name.startswith("metadata['") and name.endswith("']"):
        return bool(intent["metadata"].get(name[10:-2]) == value)
    if name in ("status", "currency"):
        return bool(intent[name] == value)
    raise invalid(f"Field {name!r} is not searchable here", param="query")
