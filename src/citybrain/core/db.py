"""Database engine, declarative base with an explicit constraint naming convention, sessions."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused; use citybrain.core.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_begin_before_savepoint)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the single writer; foreign keys are off by default in SQLite.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin_before_savepoint(conn: Any, _name: str) -> None:
    # pysqlite opens its transaction lazily, before the first INSERT/UPDATE/DELETE. A SAVEPOINT
    # sent outside a transaction becomes the transaction, and its RELEASE then commits for good:
    # the outer rollback (a failed request, a test) would no longer undo it. Open it first.
    # IMMEDIATE: a savepoint means the transaction will write. A deferred BEGIN would read from
    # a snapshot first; if another connection (the ingestion thread, a second process) commits
    # meanwhile, upgrading that snapshot to a write fails at once with "database is locked"
    # instead of waiting in the busy handler.
    if not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _sqlite_write_lock(db: Session, request: Request) -> threading.Lock | None:
    """On SQLite, requests that may write take turns in this process before they begin.

    SQLite has one writer at a time; a second writer otherwise waits in SQLite's busy handler,
    which sleeps in steps of up to 100 ms and lets newcomers overtake it: under load a few
    requests waited seconds (p99 in docs/performance.md). Queueing on a Python lock instead
    wakes the next request as soon as the previous one commits. Reads (GET) do not queue: WAL
    lets them run beside the writer. Other processes still meet the busy handler."""
    if request.method in _SAFE_METHODS:
        return None
    bind = db.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    engine = bind.engine
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(engine)
        if lock is None:
            lock = _WRITE_LOCKS[engine] = threading.Lock()
    return lock


def get_db(request: Request) -> Iterator[Session]:
    """The request owns the transaction: commit on success, roll back on any error."""
    db: Session = request.app.state.sessionmaker()
    lock = _sqlite_write_lock(db, request)
    if lock is not None:
        lock.acquire()
    try:
        # Check the connection out here, in the thread pool: async endpoints then never wait
        # for a pooled connection on the event loop, which would stall every other request.
        db.connection()
        yield db
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()
        if lock is not None:
            lock.release()


# scope="function": commit (or fail) before the response is sent, so a redirect never races
# the commit and a failed commit is never reported as success.
DbSession = Annotated[Session, Depends(get_db, scope="function")]
