"""The marketplace adapter: orders pushed by marketplace stores, codes delivered back.

`POST /marketplace/v1/{store}/orders` is signed exactly like the open API
(KQ1-HMAC-SHA256, see docs/open-api.md) with `X-Kq-Key` = the store code and the
store's push secret; the codes come back encrypted for the store the way the
open API encrypts them for an agent (HKDF salt = the store code). Stores, their
price lists and file imports are run from `kaquan channel marketplace`.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from kaquan.channels import Adapter, marketplace, schemas
from kaquan.channels.agents import DatabaseNonces, NonceStore, RedisNonces
from kaquan.kit.bounds import Int64
from kaquan.runtime import Runtime
from kaquan.web.deps import RuntimeDep, client_ip

router = APIRouter(prefix="/marketplace/v1", tags=["marketplace"])
adapter = Adapter("marketplace", "orders from marketplace stores, by HTTP push or file", router)


def _verifier(request: Request, rt: Runtime) -> marketplace.StoreVerifier:
    """One verifier per app, its nonces kept where the open API keeps them (Redis when configured)."""
    found: marketplace.StoreVerifier | None = getattr(request.app.state, "marketplace_verifier", None)
    if found is None:
        nonces: NonceStore = RedisNonces(rt.redis) if rt.redis is not None else DatabaseNonces(rt.db)
        found = marketplace.StoreVerifier(rt.db, rt.keyring, nonces, window_s=rt.settings.api_window_s)
        request.app.state.marketplace_verifier = found
    return found


async def signed_store(store: str, request: Request, rt: RuntimeDep) -> marketplace.StoreCaller:
    """The store whose push secret signed this request; refused otherwise."""
    return await _verifier(request, rt).authenticate(
        store,
        method=request.method,
        path=request.url.path,
        raw_query=request.url.query,
        body=await request.body(),
        headers=request.headers,
    )


Caller = Annotated[marketplace.StoreCaller, Depends(signed_store)]


class MarketplaceOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marketplace_order_id: str
    sku: str
    quantity: Int64
    buyer: str | None = None


@router.post("/{store}/orders", status_code=201)
async def push_order(
    request: Request, response: Response, rt: RuntimeDep, caller: Caller, body: MarketplaceOrderIn
) -> schemas.MarketplaceOrderOut:
    """A paid marketplace order: 201 delivered with its codes, 200 for a replay of the same order."""
    wanted = marketplace.MarketplaceOrderRequest(body.marketplace_order_id, body.sku, body.quantity, body.buyer or "")
    pushed = await rt.db.run(
        lambda session: marketplace.push_order(
            rt.db,
            session,
            rt.vault,
            caller,
            wanted,
            max_per_order=rt.settings.max_per_order,
            ip=client_ip(request),
        )
    )
    if not pushed.created:
        response.status_code = 200
    return marketplace.order_out(pushed, caller)
