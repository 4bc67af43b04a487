"""What the soak reads besides the page: health, lifespans, pool size."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app import db, lifecycle

router = APIRouter(prefix="/admin")


@router.get("/health")
async def health() -> dict[str, Any]:
    return {"ok": True, "lifespans_running": lifecycle.running(), "pool_size": db.pool_size()}
