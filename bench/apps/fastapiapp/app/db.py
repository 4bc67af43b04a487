"""The SQLAlchemy engine and session factory: PostgreSQL with ``DATABASE_URL``,
else a SQLite file under ``BENCH_DATA_DIR``.

The engine is created when this module first runs and lives as long as the
process; its pool keeps the connections. Under hotmod a reload of this module
hands the engine to the new instance (``__mp_clone__``) instead of creating a
second one with a second pool; ``__mp_purge__`` disposes of it when nothing was
handed over (shutdown, or a failed clone). Every connection the pool opens is
counted by appending one byte to ``BENCH_DB_OPEN_LOG``, so the bench can count
opens per reload, across the process restarts of the other reloaders.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.config import settings

_OPEN_LOG = os.environ.get("BENCH_DB_OPEN_LOG", "")


class Base(DeclarativeBase):
    pass


def _count_open(dbapi_connection: Any, connection_record: Any) -> None:
    # One byte per connection opened, appended atomically: the file size is the count.
    if _OPEN_LOG:
        fd = os.open(_OPEN_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, b"o")
        finally:
            os.close(fd)


def _create_engine() -> Engine:
    url = settings().database_url
    if url:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        name = os.environ.get("BENCH_APPLICATION_NAME", "hotmod-bench")
        created = create_engine(url, pool_size=4, max_overflow=0, connect_args={"application_name": name})
    else:
        data_dir = settings().data_dir
        os.makedirs(data_dir, exist_ok=True)
        created = create_engine(
            f"sqlite:///{os.path.join(data_dir, 'shop.sqlite3')}",
            connect_args={"check_same_thread": False, "timeout": 5},
            pool_size=4,
            max_overflow=0,
        )
    event.listen(created, "connect", _count_open)
    # The restarting reloaders end the process with SIGTERM: close the pool as an app
    # that cleans up does, so PostgreSQL sees the backends go.
    atexit.register(created.dispose)
    return created


# A reload of this module under hotmod finds the engine its predecessor handed over.
engine: Engine = globals().get("engine") or _create_engine()
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)


def session() -> Iterator[Session]:
    """One session per request (a FastAPI dependency with ``yield``)."""
    with SessionLocal() as db:
        yield db


def __mp_clone__(new: Any) -> None:
    new.__dict__["engine"] = engine


def __mp_purge__() -> None:
    engine.dispose()
    atexit.unregister(engine.dispose)
