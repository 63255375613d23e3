"""Savepoints nest inside the outer transaction on every backend, so rolling it back undoes them.

This is what lets a request (or a test) roll back work that a service already "committed" to a
savepoint; with pysqlite's lazy BEGIN a released savepoint used to be a real commit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core.db import make_engine
from citybrain.org.models import LoginAttempt

MARK = "savepoint-probe"


def _probes(engine) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.username == MARK))


def _write_in_savepoint_then_roll_back_outer(engine) -> None:  # noqa: ANN001
    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        session.add(LoginAttempt(username=MARK, ip="-", at=datetime.now(UTC), success=False, reason=""))
        session.commit()  # releases the savepoint only
        session.close()
        outer.rollback()


def test_a_released_savepoint_is_rolled_back_with_its_outer_transaction(engine):
    before = _probes(engine)
    _write_in_savepoint_then_roll_back_outer(engine)
    assert _probes(engine) == before


def test_sqlite_savepoints_are_rolled_back_with_the_outer_transaction_in_a_fresh_file(tmp_path):
    from citybrain.core import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'probe.db'}")
    migrate.upgrade(engine)
    _write_in_savepoint_then_roll_back_outer(engine)
    assert _probes(engine) == 0
    engine.dispose()


def test_nested_savepoint_rollback_keeps_the_outer_work(tmp_path):
    from citybrain.core import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'probe.db'}")
    migrate.upgrade(engine)
    with Session(engine) as session:
        session.add(LoginAttempt(username=MARK, ip="outer", at=datetime.now(UTC), success=False, reason=""))
        nested = session.begin_nested()
        session.add(LoginAttempt(username=MARK, ip="inner", at=datetime.now(UTC), success=False, reason=""))
        nested.rollback()
        session.commit()
    with Session(engine) as session:
        assert session.scalars(select(LoginAttempt.ip).where(LoginAttempt.username == MARK)).all() == ["outer"]
    engine.dispose()
