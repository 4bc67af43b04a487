"""Health, statistics and the event-loop lag probe, under ``/admin``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from app import lagprobe, models, schemas
from app.config import settings
from app.dependencies import SessionDep, get_token_header

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/health")
def health(db: SessionDep) -> dict[str, Any]:
    """Ready when the database answers (the bench waits on this)."""
    return {"ok": True, "items": db.scalar(select(func.count()).select_from(models.Item))}


@router.get("/loop-lag")
async def loop_lag(reset: Annotated[bool, Query()] = False) -> dict[str, Any]:
    """The probe's reading since its last reset; ``?reset=true`` reads, then starts afresh."""
    reading = lagprobe.probe.snapshot()
    if reset:
        lagprobe.probe.reset()
    return reading


@router.get("/stats", response_model=schemas.Stats, dependencies=[Depends(get_token_header)])
def stats(db: SessionDep) -> schemas.Stats:
    def count(model: type[models.Base]) -> int:
        return db.scalar(select(func.count()).select_from(model)) or 0

    value = db.scalar(select(func.sum(models.Item.price_cents * models.Item.stock))) or 0
    return schemas.Stats(
        items=count(models.Item),
        users=count(models.User),
        orders=count(models.Order),
        stock_value_cents=value,
    )


@router.get("/config", dependencies=[Depends(get_token_header)])
async def config() -> dict[str, Any]:
    current = settings()
    return {
        "site_name": current.site_name,
        "page_size": current.page_size,
        "postgres": bool(current.database_url),
    }


@router.post("/reindex", dependencies=[Depends(get_token_header)])
async def reindex() -> dict[str, str]:
    return {"status": "nothing to reindex"}
