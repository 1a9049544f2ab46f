"""Admin sign-in, sessions, users and API tokens."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/api", tags=["admin"])
