"""The ASGI target, ``app.main:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import db, lifecycle
from app.views import admin, api, pages


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await db.open_pool()
    lifecycle.started()
    try:
        yield
    finally:
        lifecycle.stopped()


app = FastAPI(title="asgi soak", lifespan=lifespan)
for module in (pages, api, admin):
    app.include_router(module.router)
