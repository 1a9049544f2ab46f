"""The admin API for callbacks to agents: deliveries, attempts, manual replay."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/api", tags=["callbacks"])
