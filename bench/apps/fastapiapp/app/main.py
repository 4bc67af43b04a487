"""The application: routers included, the schema made and the lag probe started in the lifespan.

The ASGI target is ``app.main:app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app import lagprobe, models
from app.config import settings
from app.dependencies import get_token_header
from app.internal import admin
from app.routers import items, live, orders, pages, users


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    models.init_schema()
    lagprobe.start()
    try:
        yield
    finally:
        lagprobe.stop()


app = FastAPI(title=settings().site_name, lifespan=lifespan)
app.include_router(pages.router)
app.include_router(items.router)
app.include_router(users.router)
app.include_router(orders.router)
app.include_router(live.router)
app.include_router(admin.router)


@app.get("/api/ping", dependencies=[Depends(get_token_header)])
async def ping() -> dict[str, str]:
    return {"pong": "ok"}
