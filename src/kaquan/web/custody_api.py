"""Custody: the audit trail, code reveals with a reason, leak tracing, quarantine."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/api", tags=["admin"])
