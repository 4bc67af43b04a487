"""What the soak reads besides the page: health, lifespans, pool size, and the heap."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from fastapi import APIRouter

from app import db, lifecycle

router = APIRouter(prefix="/admin")


@router.get("/health")
async def health() -> dict[str, Any]:
    return {"ok": True, "lifespans_running": lifecycle.running(), "pool_size": db.pool_size()}


@router.get("/trim")
async def trim() -> dict[str, Any]:
    """Hand the C heap's free pages back to the OS (glibc's ``malloc_trim``) and say the
    RSS before and after: memory that was freed but kept by the allocator is not a leak,
    and this tells the two apart at the end of a soak."""
    before = _rss_kib()
    libc_name = ctypes.util.find_library("c")
    trimmed = None
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            trimmed = bool(libc.malloc_trim(0))
    return {"rss_kib_before": before, "rss_kib_after": _rss_kib(), "trimmed": trimmed}


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
