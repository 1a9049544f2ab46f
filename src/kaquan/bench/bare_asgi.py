"""The bare-ASGI baseline of `kaquan bench flash`: the sold-out answer and nothing else, under the same server.

It reads the request body, as the purchase route must, and answers every request with the
bytes kaquan answers a late buyer: no routing, no middleware, no state. What kaquan's
sold-out answers reach, divided by what this reaches under the same uvicorn with the same
workers and the same `wrk` script, is `ratio_vs_bare_asgi`.
"""

from starlette.types import Receive, Scope, Send

SOLD_OUT = b'{"result":"sold_out"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(SOLD_OUT)).encode())]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message["type"] == "http.request" and message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": SOLD_OUT})
