"""Redemption (核销) of merchant-issued vouchers."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/api", tags=["admin"])
