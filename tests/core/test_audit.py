"""The hash-chained audit log: an intact chain verifies; any edit, deletion or reordering is
caught and the first bad row is named; a refused write leaves no entry."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import JSON, bindparam, func, select, text
from sqlalchemy.orm import Session

from citybrain.core import audit
from citybrain.core.errors import Conflict
from citybrain.core.models import AuditHead, AuditLog
from citybrain.org import service as org_service
from citybrain.org.schemas import DepartmentCreate, UserCreate

_COLUMNS = ("at", "actor", "actor_user_id", "action", "object_type", "object_id", "before", "after",
            "prev_hash", "hash")


def _append(db: Session, actor, n: int = 4) -> list[int]:  # noqa: ANN001
    ids = []
    for i in range(n):
        entry = audit.record(db, actor=actor, action="test.write", object_type="thing", object_id=i,
                             before={"n": i}, after={"n": i + 1, "label": f"第{i}号"})
        ids.append(entry.id)
    db.commit()
    return ids


def _audit_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AuditLog))


def _verify(db: Session) -> audit.VerifyResult:
    db.expire_all()  # read what the table holds now, not what the session remembers
    return audit.verify(db)


def test_recorded_entries_form_an_intact_chain(db, admin_actor, frozen_clock):
    before = _audit_count(db)
    ids = _append(db, admin_actor)
    result = _verify(db)
    assert result.ok and result.bad_id is None and result.reason == ""
    assert result.checked == before + len(ids)
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_each_entry_links_to_the_previous_and_the_head_names_the_last(db, admin_actor, frozen_clock):
    ids = _append(db, admin_actor, 3)
    rows = db.scalars(select(AuditLog).where(AuditLog.id.in_(ids)).order_by(AuditLog.id)).all()
    assert rows[1].prev_hash == rows[0].hash and rows[2].prev_hash == rows[1].hash
    head = db.get(AuditHead, 1)
    assert (head.last_id, head.last_hash) == (rows[-1].id, rows[-1].hash)


def test_entry_records_actor_action_object_time_and_values(db, admin_actor, frozen_clock):
    frozen_clock[0] += timedelta(minutes=7)
    entry = audit.record(db, actor=admin_actor, action="thing.update", object_type="thing", object_id=42,
                         before={"when": date(2026, 1, 2)}, after={"amount": Decimal("1.50"), "名": "值"})
    db.commit()
    db.expire_all()
    row = db.get(AuditLog, entry.id)
    assert row.actor == admin_actor.label and row.action == "thing.update"
    assert row.object_type == "thing" and row.object_id == "42"
    assert row.at == frozen_clock[0]
    # Values are stored JSON-safe, so the hash still matches after the database round trip.
    assert row.before == {"when": "2026-01-02"} and row.after == {"amount": "1.50", "名": "值"}
    assert _verify(db).ok


def test_editing_a_rows_after_value_is_detected_at_that_row(db, admin_actor, frozen_clock):
    ids = _append(db, admin_actor)
    target = ids[1]
    db.execute(text("UPDATE audit_log SET after = :v WHERE id = :id").bindparams(bindparam("v", type_=JSON)),
               {"v": {"n": 999}, "id": target})
    result = _verify(db)
    assert not result.ok and result.bad_id == target
    assert "edited" in result.reason
    assert result.checked == target - 1


def test_editing_the_actor_column_is_detected(db, admin_actor, frozen_clock):
    ids = _append(db, admin_actor)
    db.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE id = :id"), {"id": ids[2]})
    result = _verify(db)
    assert (result.ok, result.bad_id) == (False, ids[2])


def test_an_edited_row_with_a_recomputed_hash_breaks_the_link_of_the_next_row(db, admin_actor, frozen_clock):
    ids = _append(db, admin_actor)
    row = db.get(AuditLog, ids[1])
    forged = {c: getattr(row, c) for c in ("id", *_COLUMNS)} | {"after": {"n": -1}}
    db.execute(text("UPDATE audit_log SET after = :after, hash = :hash WHERE id = :id")
               .bindparams(bindparam("after", type_=JSON)),
               {"after": {"n": -1}, "hash": audit._digest(forged), "id": ids[1]})
    result = _verify(db)
    assert not result.ok and result.bad_id == ids[2]
    assert "link" in result.reason


def test_deleting_a_middle_row_is_detected_and_names_the_missing_row(db, admin_actor, frozen_clock):
    ids = _append(db, admin_actor)
    db.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[1]})
    result = _verify(db)
    assert not result.ok and result.bad_id == ids[1]
    assert "missing" in result.reason


def test_deleting_the_first_row_is_detected(db, admin_actor, frozen_clock):
    _append(db, admin_actor, 2)
    db.execute(text("DELETE FROM audit_log WHERE id = 1"))
    result = _verify(db)
    assert (result.ok, result.bad_id, result.checked) == (False, 1, 0)


def test_deleting_the_last_row_is_caught_by_the_head_anchor(db, admin_actor, frozen_clock):
    ids = _append(db, admin_actor)
    db.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[-1]})
    result = _verify(db)
    assert not result.ok and result.bad_id == ids[-1]
    assert "missing" in result.reason and result.checked == ids[-1] - 1


def test_deleting_the_head_anchor_is_detected(db, admin_actor, frozen_clock):
    ids = _append(db, admin_actor, 2)
    db.execute(text("DELETE FROM audit_head"))
    result = _verify(db)
    assert not result.ok and result.bad_id == ids[-1]


def test_swapping_two_rows_content_is_detected_as_reordering(db, admin_actor, frozen_clock):
    ids = _append(db, admin_actor)
    first, second = (db.get(AuditLog, i) for i in ids[1:3])
    values = {i: {c: getattr(r, c) for c in _COLUMNS} for i, r in ((first.id, first), (second.id, second))}
    db.expunge_all()
    stmt = text(f"UPDATE audit_log SET {', '.join(f'{c} = :{c}' for c in _COLUMNS)} WHERE id = :id").bindparams(
        bindparam("before", type_=JSON), bindparam("after", type_=JSON),
        bindparam("at", type_=AuditLog.__table__.c.at.type))
    db.execute(stmt, {**values[ids[2]], "id": ids[1]})
    db.execute(stmt, {**values[ids[1]], "id": ids[2]})
    result = _verify(db)
    assert not result.ok and result.bad_id == ids[1]


def test_verify_walks_a_chain_longer_than_one_batch(db, admin_actor, frozen_clock):
    ids = _append(db, admin_actor, 5)
    assert audit.verify(db, batch=2).ok
    db.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[3]})
    db.expire_all()
    result = audit.verify(db, batch=2)
    assert (result.ok, result.bad_id) == (False, ids[3])


def test_duplicate_username_refused_by_the_service_leaves_no_audit_row(db, admin_actor):
    before, head = _audit_count(db), db.get(AuditHead, 1).last_id
    with pytest.raises(Conflict):
        org_service.create_user(db, data=UserCreate(username="Admin", password="Another-pass-1",
                                                    role="citizen"), actor=admin_actor)
    db.flush()
    assert _audit_count(db) == before and db.get(AuditHead, 1).last_id == head
    assert _verify(db).ok


def test_duplicate_department_refused_by_the_service_leaves_no_audit_row(db, admin_actor):
    before = _audit_count(db)
    with pytest.raises(Conflict):
        org_service.create_department(db, data=DepartmentCreate(code="bigdata", name="另一个大数据局"),
                                      actor=admin_actor)
    db.flush()
    assert _audit_count(db) == before


def test_a_successful_service_write_records_exactly_one_entry(db, admin_actor):
    before = _audit_count(db)
    user = org_service.create_user(db, data=UserCreate(username="auditee", password="Audit-pass-1",
                                                       role="citizen"), actor=admin_actor)
    db.flush()
    assert _audit_count(db) == before + 1
    last = db.scalar(select(AuditLog).order_by(AuditLog.id.desc()).limit(1))
    assert (last.action, last.object_id, last.actor) == ("user.create", str(user.id), admin_actor.label)
    assert last.after["username"] == "auditee" and "password_hash" not in last.after


def test_one_transaction_locks_the_head_once_and_keeps_the_chain(engine, admin_actor) -> None:
    """An engine-bound session (as the server uses) reads and locks the head for its first
    entry only; later entries, a rolled-back savepoint in between, and a lock first taken in a
    savepoint that is rolled back all still give an unbroken chain."""
    with Session(engine) as db:
        try:
            sp = db.begin_nested()
            undone = audit.record(db, actor=admin_actor, action="test.undone", object_type="thing")
            sp.rollback()  # the lock and the head read went with the savepoint
            first = audit.record(db, actor=admin_actor, action="test.one", object_type="thing")
            assert first.id == undone.id and first.prev_hash == undone.prev_hash
            sp = db.begin_nested()
            audit.record(db, actor=admin_actor, action="test.undone", object_type="thing")
            sp.rollback()
            second = audit.record(db, actor=admin_actor, action="test.two", object_type="thing")
            third = audit.record(db, actor=admin_actor, action="test.three", object_type="thing")
            db.flush()
            assert (second.id, third.id) == (first.id + 1, first.id + 2)
            assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
            head = db.get(AuditHead, 1, populate_existing=True)
            assert (head.last_id, head.last_hash) == (third.id, third.hash)
            assert audit.verify(db).ok
        finally:
            db.rollback()
