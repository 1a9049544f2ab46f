"""HEAD answered as GET without its body (RFC 9110 §9.3.2).

FastAPI's routes are declared for GET only, so `curl -I`, uptime monitors and link checkers got
405 for every page. The request goes through the app as a GET; the answer keeps its status and every
header (its `content-length` included, as HEAD's must) and loses its body.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """Inside `SecurityMiddleware`, so that the access log still says HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, without_body)
