"""The marketplace adapter: orders pushed by marketplace stores, codes delivered back."""

from fastapi import APIRouter

from kaquan.channels.adapters import Adapter

router = APIRouter(prefix="/marketplace/v1", tags=["marketplace"])
adapter = Adapter("marketplace", "orders from marketplace stores, by HTTP push or file", router)
