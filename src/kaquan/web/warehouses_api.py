"""The admin API for warehouses, refill rules and stock transfers."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/api", tags=["warehouses"])
