"""The admin API for flash-sale events."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/api", tags=["flashsale"])
