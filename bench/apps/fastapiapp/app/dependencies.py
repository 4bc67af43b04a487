"""Dependencies shared by the routers, as in FastAPI's "Bigger Applications" tutorial."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query
from sqlalchemy.orm import Session

from app import db
from app.config import settings

SessionDep = Annotated[Session, Depends(db.session)]


class Pagination:
    """``?offset=&limit=`` with bounds, for every listing."""

    def __init__(
        self,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> None:
        self.offset = offset
        self.limit = limit


PageDep = Annotated[Pagination, Depends()]


async def get_token_header(x_token: Annotated[str, Header()] = "") -> None:
    if x_token != settings().admin_token:
        raise HTTPException(status_code=400, detail="X-Token header invalid")
