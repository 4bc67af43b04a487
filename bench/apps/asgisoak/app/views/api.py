"""JSON over the items table: the soak's background load."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app import db

router = APIRouter(prefix="/api")


class Item(BaseModel):
    id: int
    name: str
    price_cents: int


@router.get("/items", response_model=list[Item])
async def items() -> list[Item]:
    rows = await db.query("select id, name, price_cents from bench_items order by id")
    return [Item(id=i, name=name, price_cents=cents) for i, name, cents in rows]
