"""The buyer's flash-sale API: admission, tickets, results."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/flash", tags=["flashsale"])
