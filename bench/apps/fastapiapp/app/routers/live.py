"""Long-lived connections: a server-sent event stream and a WebSocket.

Both report the ``MARKER`` of ``app.routers.pages`` as they go, so the bench can
tell which code serves a connection opened before an edit: the connection's own
generation (the old marker to its end), the newest code (the new marker midway),
or nobody (closed by a restart).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from app.routers import pages

router = APIRouter(prefix="/live", tags=["live"])


@router.get("/events")
async def events(
    count: Annotated[int, Query(ge=1, le=10_000)] = 20,
    interval_ms: Annotated[int, Query(ge=0, le=10_000)] = 50,
) -> StreamingResponse:
    """``count`` events, one every ``interval_ms``, then an ``end`` event."""

    async def stream() -> AsyncIterator[str]:
        for number in range(count):
            payload = json.dumps({"n": number, "marker": pages.MARKER})
            yield f"id: {number}\nevent: tick\ndata: {payload}\n\n"
            await asyncio.sleep(interval_ms / 1000)
        yield f"event: end\ndata: {json.dumps({'marker': pages.MARKER})}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    """Greets with the marker, then answers each text message with it and the marker."""
    await websocket.accept()
    await websocket.send_json({"hello": pages.MARKER})
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_json({"echo": text, "marker": pages.MARKER})
    except WebSocketDisconnect:
        return


@router.get("/marker")
async def marker() -> dict[str, str]:
    return {"marker": pages.MARKER}
