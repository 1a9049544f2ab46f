"""JSON request bodies only: a body in another media type (or none named) is refused with 415, not guessed at.

Without this, FastAPI hands a `text/plain` or form-encoded body to the model as
raw bytes (a 422 about the wrong thing) and the open API, which reads its bodies
itself, would parse any bytes as JSON. Both entry points share one rule:
`application/json`, or any `application/*+json`, with any parameters (`charset=utf-8`).
"""

from email.message import Message

from fastapi import Depends, Request
from fastapi.params import Form
from fastapi.routing import APIRoute

from kaquan.kit.errors import DomainError


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"

    def __init__(self, sent: str | None) -> None:
        super().__init__(
            "send the body as JSON with Content-Type: application/json",
            content_type=sent,
        )


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def check_json_body(request: Request, body: bytes) -> None:
    """Refuse a non-empty body that is not declared JSON (an empty body is left to the route's own checks)."""
    sent = request.headers.get("content-type")
    if body and not is_json(sent):
        raise UnsupportedMediaType(sent)


def _takes_json(route: object) -> bool:
    if not isinstance(route, APIRoute) or route.body_field is None:
        return False
    return not isinstance(route.body_field.field_info, Form)  # multipart uploads and forms keep their own type


async def json_only(request: Request) -> None:
    """Router dependency: on a route whose body is a JSON model, refuse any other media type with 415."""
    if _takes_json(request.scope.get("route")):
        check_json_body(request, await request.body())


JSON_ONLY = [Depends(json_only)]
"""`APIRouter(..., dependencies=JSON_ONLY)`: the JSON APIs (admin and shop) refuse bodies that are not JSON."""
