"""HTML pages. The benchmark edits MARKER and waits until ``GET /`` serves it."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from app import models
from app.config import settings
from app.dependencies import SessionDep

MARKER = "bench-edit-00000"

router = APIRouter(tags=["pages"], default_response_class=HTMLResponse)


def _page(title: str, body: str) -> str:
    site = escape(settings().site_name)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)} - {site}</title>"
        f"</head><body><header><a href='/'>{site}</a></header><main>{body}</main>"
        f"<footer><span class='marker'>{MARKER}</span></footer></body></html>"
    )


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


@router.get("/")
def index(db: SessionDep) -> str:
    size = settings().page_size
    items = db.scalars(select(models.Item).order_by(models.Item.id.desc()).limit(size)).all()
    total = db.scalar(select(func.count()).select_from(models.Item))
    rows = "".join(
        f"<li><a href='/items/{i.id}'>{escape(i.name[:40])}</a> {_money(i.price_cents)}</li>" for i in items
    )
    return _page("Home", f"<h1>{MARKER}</h1><p>{total} items</p><ul>{rows}</ul>")


@router.get("/items/{item_id}")
def item_page(item_id: int, db: SessionDep) -> str:
    found = db.get(models.Item, item_id)
    if found is None:
        raise HTTPException(status_code=404, detail="no such item")
    return _page(found.name, f"<h1>{escape(found.name)}</h1><p>{_money(found.price_cents)}</p>")


@router.get("/users/{user_id}")
def user_page(user_id: int, db: SessionDep) -> str:
    found = db.get(models.User, user_id)
    if found is None:
        raise HTTPException(status_code=404, detail="no such user")
    orders = "".join(f"<li>order {o.id}: {o.quantity} x item {o.item_id}</li>" for o in found.orders)
    return _page(found.name, f"<h1>{escape(found.name)}</h1><ul>{orders}</ul>")


@router.get("/about")
async def about() -> str:
    return _page("About", "<p>A shop that exists to be reloaded.</p>")
