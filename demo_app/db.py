"""The demo's database: one pool per process, carried across every reload.

This module is the answer to the 2006 mod_python question "how do I stop my
database connections leaking when the module is re-imported?", written the
way mod_python 3.3 made possible:

* the pool is created only if this instance's globals do not already hold
  one (``if "pool" not in globals()``);
* ``__mp_clone__`` hands the pool, its lock and its creation time to the new
  instance *before* the new code runs, so the guard above finds them there;
* ``__mp_purge__`` closes the pool where nothing took it over: at shutdown,
  or when the clone failed and the old instance's generation has drained.

With ``DATABASE_URL`` set to a PostgreSQL DSN, ``pool`` is a
:class:`psycopg_pool.ConnectionPool` whose connections carry the
``application_name`` named by the DSN, or ``hotmod-demo``. Without it,
``pool`` is one :class:`sqlite3.Connection` to ``var/demo.sqlite3`` at the
repository root (outside the package, so it is never watched), serialised by
``lock``.

Nothing carried across reloads refers to a function or class defined here:
the pool holds only library objects, so a superseded instance of this module
can be garbage collected even though its pool lives on.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, TypedDict

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

DEFAULT_APPLICATION_NAME = "hotmod-demo"
POOL_MIN_SIZE = 2
POOL_MAX_SIZE = 4
#: Seconds to wait for the first PostgreSQL connections before the import fails.
CONNECT_TIMEOUT = 10.0
MAX_NOTE_LENGTH = 500
MAX_AUTHOR_LENGTH = 60

DATABASE_URL = os.environ.get("DATABASE_URL", "")
SQLITE_PATH = Path(__file__).resolve().parent.parent / "var" / "demo.sqlite3"

_POSTGRES_SCHEMA = """
create table if not exists notes (
    id bigint generated always as identity primary key,
    author text not null,
    body text not null,
    created_at text not null
)
"""
_SQLITE_SCHEMA = """
create table if not exists notes (
    id integer primary key,
    author text not null,
    body text not null,
    created_at text not null
)
"""


class Note(TypedDict):
    id: int
    author: str
    body: str
    created_at: str


def _application_name(dsn: str) -> str:
    return str(conninfo_to_dict(dsn).get("application_name") or DEFAULT_APPLICATION_NAME)


application_name = _application_name(DATABASE_URL) if DATABASE_URL else None


def _open() -> ConnectionPool | sqlite3.Connection:
    """Open the process's pool and make sure the schema exists (idempotent)."""
    if DATABASE_URL:
        new_pool = ConnectionPool(
            DATABASE_URL,
            min_size=POOL_MIN_SIZE,
            max_size=POOL_MAX_SIZE,
            kwargs={"application_name": application_name},
            name=DEFAULT_APPLICATION_NAME,
            open=True,
        )
        try:
            new_pool.wait(timeout=CONNECT_TIMEOUT)
            with new_pool.connection() as conn:
                conn.execute(_POSTGRES_SCHEMA)
        except PoolTimeout:
            new_pool.close()
            # The pool only says that it timed out: one direct attempt names the
            # cause ("connection refused", "password authentication failed").
            psycopg.connect(DATABASE_URL, connect_timeout=3).close()
            raise
        except BaseException:
            # A pool that failed to start still has threads retrying its
            # connections: close it, or the failed import itself leaks.
            new_pool.close()
            raise
        return new_pool
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    new_connection = sqlite3.connect(SQLITE_PATH, check_same_thread=False)
    with new_connection:
        new_connection.execute(_SQLITE_SCHEMA)
    return new_connection


if "pool" not in globals():
    pool = _open()
    # Serialises use of the SQLite connection; psycopg_pool locks for itself.
    lock = threading.Lock()
    created_at = time.time()


def __mp_clone__(module: ModuleType) -> None:
    """Hand this process's pool to the new instance of this module."""
    vars(module).update(pool=pool, lock=lock, created_at=created_at)


def __mp_purge__() -> None:
    """Close the pool: nothing else will (shutdown, or a clone that failed)."""
    with lock:
        pool.close()


@contextmanager
def connection() -> Iterator[Any]:
    """A connection for one unit of work: committed on success, rolled back on error."""
    if isinstance(pool, sqlite3.Connection):
        with lock, pool:
            yield pool
    else:
        with pool.connection() as conn:
            yield conn


def _sql(statement: str) -> str:
    return statement.replace("%s", "?") if isinstance(pool, sqlite3.Connection) else statement


def _note(row: tuple[Any, ...]) -> Note:
    return Note(id=int(row[0]), author=str(row[1]), body=str(row[2]), created_at=str(row[3]))


def validate(body: object, author: object) -> tuple[str, str]:
    """Return the cleaned ``(body, author)`` or raise ``ValueError`` with a plain sentence."""
    if not isinstance(body, str) or not body.strip():
        raise ValueError("a note needs some text")
    if author is None:
        author = ""
    if not isinstance(author, str):
        raise ValueError("the author must be text")
    body, author = body.strip(), author.strip() or "anonymous"
    if len(body) > MAX_NOTE_LENGTH:
        raise ValueError(f"a note is at most {MAX_NOTE_LENGTH} characters")
    if len(author) > MAX_AUTHOR_LENGTH:
        raise ValueError(f"an author name is at most {MAX_AUTHOR_LENGTH} characters")
    return body, author


def list_notes() -> list[Note]:
    """Every note, newest first."""
    with connection() as conn:
        rows = conn.execute(
            "select id, author, body, created_at from notes order by id desc"
        ).fetchall()
    return [_note(row) for row in rows]


def get_note(note_id: int) -> Note | None:
    with connection() as conn:
        row = conn.execute(
            _sql("select id, author, body, created_at from notes where id = %s"), (note_id,)
        ).fetchone()
    return _note(row) if row else None


def notes_after(note_id: int) -> list[Note]:
    """The notes added since note ``note_id``, oldest first (what a live feed polls for)."""
    with connection() as conn:
        rows = conn.execute(
            _sql("select id, author, body, created_at from notes where id > %s order by id"),
            (note_id,),
        ).fetchall()
    return [_note(row) for row in rows]


def latest_note_id() -> int:
    """The id of the newest note, 0 when there is none: where a live feed starts."""
    with connection() as conn:
        row = conn.execute("select coalesce(max(id), 0) from notes").fetchone()
    return int(row[0])


def add_note(body: object, author: object = None) -> Note:
    """Store a note; raises ``ValueError`` when it is empty or too long."""
    body, author = validate(body, author)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with connection() as conn:
        row = conn.execute(
            _sql("insert into notes (author, body, created_at) values (%s, %s, %s) returning id"),
            (author, body, stamp),
        ).fetchone()
    return Note(id=int(row[0]), author=author, body=body, created_at=stamp)


def delete_note(note_id: int) -> bool:
    """Delete one note; False when there was none with that id."""
    with connection() as conn:
        deleted = conn.execute(_sql("delete from notes where id = %s"), (note_id,)).rowcount
    return bool(deleted)


def export_notes() -> Generator[Note, None, None]:
    """Every note, oldest first, streamed.

    On PostgreSQL the rows come from a server-side cursor, so the generator
    holds one pooled connection until it is exhausted or closed: a long
    export keeps running on the pool it started with, whatever reloads
    happen meanwhile. SQLite's single connection is never held across a
    yield, so other requests are not blocked by a slow reader.
    """
    if isinstance(pool, sqlite3.Connection):
        with connection() as conn:
            rows = conn.execute(
                "select id, author, body, created_at from notes order by id"
            ).fetchall()
        for row in rows:
            yield _note(row)
        return
    with pool.connection() as conn, conn.cursor(name="hotmod_demo_export") as cursor:
        cursor.itersize = 100
        cursor.execute("select id, author, body, created_at from notes order by id")
        for row in cursor:
            yield _note(row)


def backend_connections() -> int | None:
    """Open PostgreSQL backends with this pool's ``application_name`` (None on SQLite)."""
    if isinstance(pool, sqlite3.Connection):
        return None
    with connection() as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0])


def describe() -> dict[str, Any]:
    """What the footer and ``/api/status`` show about the pool."""
    info: dict[str, Any] = {
        "backend": "sqlite" if isinstance(pool, sqlite3.Connection) else "postgresql",
        "pool_id": id(pool),
        "pool_created_at": created_at,
        "pool_age_s": round(time.time() - created_at, 1),
        "application_name": application_name,
        "connections": backend_connections(),
        "pool_max": 1 if isinstance(pool, sqlite3.Connection) else POOL_MAX_SIZE,
    }
    if isinstance(pool, ConnectionPool):
        stats = pool.get_stats()
        info["pool_size"] = stats.get("pool_size")
        info["pool_available"] = stats.get("pool_available")
    return info
