"""The admin API for channels, price lists, quotas, agents, their keys and balances."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/api", tags=["channels"])
