"""Test fixtures: every database test runs on SQLite and, when reachable, on PostgreSQL.

Each backend gets a fresh database, migrated with the shipped Alembic migrations and loaded
once with the demo district (departments, geography, one account per role, a little base
data). Each test then runs inside a transaction that is rolled back, so tests never see each
other's writes. Set CITYBRAIN_TEST_PG_URL to point at another server; under CI a missing
PostgreSQL is an error, not a skip.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from citybrain.config import Settings
from citybrain.core import clock, migrate
from citybrain.core.actor import Actor, system_actor
from citybrain.core.db import make_engine
from helpers import DEMO_SEED

PG_ADMIN_URL = os.environ.get("CITYBRAIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_backends_used: list[str] = []


def _pg_reachable() -> str | None:
    try:
        eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


_PG_PROBLEM = _pg_reachable()
BACKENDS = ["sqlite"] + (["postgresql"] if _PG_PROBLEM is None else [])


def pytest_report_header(config: pytest.Config) -> list[str]:
    pg = "reachable" if _PG_PROBLEM is None else f"NOT reachable ({_PG_PROBLEM})"
    return [f"citybrain database backends: {', '.join(BACKENDS)} (PostgreSQL at {PG_ADMIN_URL}: {pg})"]


def pytest_sessionstart(session: pytest.Session) -> None:
    if _PG_PROBLEM is not None and os.environ.get("CI"):
        raise pytest.UsageError(f"CI requires PostgreSQL for the database tests: {_PG_PROBLEM}")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    used = ", ".join(_backends_used) or "none"
    terminalreporter.write_line(f"citybrain database backends used: {used}")


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "citybrain.db"
        eng = make_engine(f"sqlite:///{path}")
        drop = None
    else:
        name = f"citybrain_test_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        eng = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    migrate.upgrade(eng)
    _load_demo(eng)
    if request.param not in _backends_used:
        _backends_used.append(request.param)
    yield eng
    eng.dispose()
    if drop:
        drop()


def _load_demo(eng: Engine) -> None:
    from citybrain.demo.district import load_demo

    with Session(eng) as db:
        load_demo(db, seed=DEMO_SEED, actor=system_actor("test"), today=date(2026, 11, 1),
                  residents=200, enterprises=50)
        db.commit()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    if outer.is_active:
        outer.rollback()
    conn.close()


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """A session whose commits only release savepoints; everything is rolled back after the test."""
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No MQTT side in app tests (broker, ingestion worker, relay thread): tests that need it
    # start it themselves on a free port.
    return Settings(data_dir=tmp_path, secret_key=secrets.token_urlsafe(40), log_format="text",
                    log_level="WARNING", ingest_enabled=False)


@pytest.fixture
def app(settings: Settings, engine: Engine, connection: Connection):  # noqa: ANN201
    from citybrain.app import create_app

    application = create_app(settings, engine=engine)
    application.state.sessionmaker = lambda: Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    return application


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # noqa: ANN001
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def frozen_clock() -> Iterator[list[datetime]]:
    """Time stands still until the test moves it: ``frozen_clock[0] += timedelta(...)``."""
    current = [datetime(2026, 11, 26, 8, 0, tzinfo=UTC)]
    clock.set_clock(lambda: current[0])
    yield current
    clock.set_clock(None)


@pytest.fixture
def admin_actor() -> Actor:
    return system_actor("test")
