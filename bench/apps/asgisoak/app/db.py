"""The database pool: psycopg's AsyncConnectionPool with ``DATABASE_URL``, else SQLite.

The pool is opened by the first lifespan startup and lives as long as the process:
the lifespans of later generations find it open. Under hotmod a reload of this module
hands the pool to the new instance (``__mp_clone__``); the async ``__mp_purge__``
closes it when nothing was handed over (shutdown, a failed clone), on the server's
loop where the pool's tasks run.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from typing import Any

_OPEN_LOG = os.environ.get("BENCH_DB_OPEN_LOG", "")


def _count_open() -> None:
    # One byte per connection opened, appended atomically: the file size is the count.
    if _OPEN_LOG:
        fd = os.open(_OPEN_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, b"o")
        finally:
            os.close(fd)


async def _configure(conn: Any) -> None:
    _count_open()


class SQLitePool:
    """A fixed set of SQLite connections, each used by one worker thread at a time."""

    def __init__(self, path: str, size: int = 4) -> None:
        self._path = path
        self._size = size
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._opened = 0  # guarded by _lock
        self._lock = threading.Lock()

    def query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = self._get()
        try:
            rows = list(conn.execute(sql, params).fetchall())  # [] for a statement
            conn.commit()
            return rows
        finally:
            self._idle.put(conn)

    def _get(self) -> sqlite3.Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._opened < self._size:
                self._opened += 1
                _count_open()
                return sqlite3.connect(self._path, check_same_thread=False, timeout=5)
        return self._idle.get(timeout=5)

    def size(self) -> int:
        return self._opened

    async def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


# A reload of this module under hotmod finds the pool its predecessor handed over.
_pool: Any = globals().get("_pool")


def is_postgres() -> bool:
    return bool(os.environ.get("DATABASE_URL"))


async def open_pool() -> None:
    """Called by each lifespan startup: opens the pool the first time only."""
    global _pool
    if _pool is not None:
        return
    url = os.environ.get("DATABASE_URL", "")
    if url:
        from psycopg_pool import AsyncConnectionPool

        name = os.environ.get("BENCH_APPLICATION_NAME", "hotmod-bench")
        opened = AsyncConnectionPool(
            url,
            min_size=2,
            max_size=4,
            kwargs={"application_name": name, "autocommit": True},
            configure=_configure,
            open=False,
            name=name,
        )
        await opened.open(wait=True, timeout=10)
        _pool = opened
    else:
        data_dir = os.environ.get("BENCH_DATA_DIR", "var")
        os.makedirs(data_dir, exist_ok=True)
        _pool = SQLitePool(os.path.join(data_dir, "shop.sqlite3"))
    await _init_schema()


def pool_size() -> int:
    if _pool is None:
        return 0
    if is_postgres():
        return int(_pool.get_stats()["pool_size"])
    return int(_pool.size())


async def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if _pool is None:
        raise RuntimeError("the pool is not open: the lifespan startup did not run")
    if not is_postgres():
        return await asyncio.to_thread(_pool.query, sql.replace("%s", "?"), params)
    async with _pool.connection() as conn:
        cursor = await conn.execute(sql, params)
        return list(await cursor.fetchall()) if cursor.description is not None else []


async def _init_schema() -> None:
    await query(
        "create table if not exists bench_items"
        " (id integer primary key, name text not null, price_cents integer not null)"
    )
    if not await query("select 1 from bench_items limit 1"):
        for i in range(1, 21):
            await query(
                "insert into bench_items (id, name, price_cents) values (%s, %s, %s) on conflict do nothing",
                (i, f"item number {i} with a fairly long descriptive name", 199 * i),
            )


def __mp_clone__(new: Any) -> None:
    new.__dict__["_pool"] = _pool


async def __mp_purge__() -> None:
    if _pool is not None:
        await _pool.close()
