"""The open API for agents (代理商): signed requests, prepaid orders, encrypted codes."""

from fastapi import APIRouter

from kaquan.channels.adapters import Adapter

router = APIRouter(prefix="/open/v1", tags=["open api"])
adapter = Adapter("open_api", "signed open API for downstream agents", router)
