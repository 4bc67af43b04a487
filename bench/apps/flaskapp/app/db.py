"""The database pool: psycopg_pool with ``DATABASE_URL``, else SQLite.

The pool is opened lazily on first use and lives as long as the process. Under
hotmod a reload of this module hands the open pool to the new instance
(``__mp_clone__``) instead of opening a new one; ``__mp_purge__`` closes it
when nothing was handed over (shutdown, or a failed clone).
"""

from __future__ import annotations

import atexit
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_OPEN_LOG = os.environ.get("BENCH_DB_OPEN_LOG", "")


def _count_open() -> None:
    # One byte per connection opened, appended atomically: the file size is the count,
    # and it survives the process restarts the peers do.
    if _OPEN_LOG:
        fd = os.open(_OPEN_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, b"o")
        finally:
            os.close(fd)


class SQLitePool:
    """A fixed set of SQLite connections handed out one request at a time."""

    def __init__(self, path: str, size: int = 4) -> None:
        self._path = path
        self._size = size
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._opened = 0  # guarded by _lock
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._get()
        try:
            yield conn
            conn.commit()
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
                conn = sqlite3.connect(self._path, check_same_thread=False, timeout=5)
                _count_open()
                return conn
        return self._idle.get(timeout=5)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _open_pool() -> Any:
    url = os.environ.get("DATABASE_URL", "")
    if url:
        from psycopg_pool import ConnectionPool

        name = os.environ.get("BENCH_APPLICATION_NAME", "hotmod-bench")
        opened = ConnectionPool(
            url,
            min_size=2,
            max_size=4,
            kwargs={"application_name": name, "autocommit": True},
            configure=lambda conn: _count_open(),
            open=True,
            name=name,
        )
        # The restarting peers end the process with sys.exit(). A pool left open for
        # its __del__ at interpreter shutdown waits up to 5 s per worker thread there
        # on Python 3.13 (psycopg/psycopg#930): the peer would be timed on the app's
        # slow exit, not on its reload. A real app closes its pool; so does this one.
        atexit.register(opened.close)
        return opened
    data_dir = os.environ.get("BENCH_DATA_DIR", "var")
    os.makedirs(data_dir, exist_ok=True)
    return SQLitePool(os.path.join(data_dir, "shop.sqlite3"))


# A reload of this module under hotmod finds the pool its predecessor handed over.
_pool: Any = globals().get("_pool")
_pool_lock = globals().get("_pool_lock") or threading.Lock()


def pool() -> Any:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = _open_pool()
    return _pool


def is_postgres() -> bool:
    return bool(os.environ.get("DATABASE_URL"))


def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if not is_postgres():
        sql = sql.replace("%s", "?")
    with pool().connection() as conn:
        return list(conn.execute(sql, params).fetchall())


def execute(sql: str, params: tuple[Any, ...] = ()) -> None:
    if not is_postgres():
        sql = sql.replace("%s", "?")
    with pool().connection() as conn:
        conn.execute(sql, params)


def init_schema() -> None:
    execute(
        "create table if not exists bench_items"
        " (id integer primary key, name text not null, price_cents integer not null)"
    )
    if not query("select 1 from bench_items limit 1"):
        for i in range(1, 21):
            execute(
                "insert into bench_items (id, name, price_cents) values (%s, %s, %s)"
                " on conflict do nothing",
                (i, f"item number {i} with a fairly long descriptive name", 199 * i),
            )


def __mp_clone__(new: Any) -> None:
    new.__dict__["_pool"] = _pool
    new.__dict__["_pool_lock"] = _pool_lock


def __mp_purge__() -> None:
    if _pool is not None:
        _pool.close()
        atexit.unregister(_pool.close)
