"""The HTML page. The soak edits MARKER and waits until it is served."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app import db

MARKER = "bench-edit-00000"

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def index() -> str:
    rows = await db.query("select id, name, price_cents from bench_items order by id limit 5")
    items = "".join(f"<li>{name}: {cents / 100:.2f}</li>" for _, name, cents in rows)
    return f"<!doctype html><title>shop</title><p>{MARKER}</p><ul>{items}</ul>"
