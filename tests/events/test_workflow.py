"""The workflow table: every transition checked, applied, logged and audited — or refused whole."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from citybrain.core.errors import Conflict, Forbidden, Invalid
from citybrain.events import service, timelimits, workflow
from citybrain.events.enums import Status
from citybrain.events.models import Event
from citybrain.events.workflow import InvalidTransition
from event_helpers import SILULU, WANGCUN, actor, counts, report  # noqa: F401


def go(db, event, action, who, **kw):
    return service.transition(db, event_id=event.id, action=action, actor=who, **kw)


@pytest.fixture
def dispatched(db, categories, frozen_clock, admin_actor) -> Event:
    event = report(db, who=None)
    go(db, event, "accept", admin_actor)
    assert event.status == "dispatched"
    return event


def test_every_action_names_real_statuses_and_a_known_permission():
    from citybrain.core.permissions import PERMISSIONS

    for action in workflow.ACTIONS.values():
        assert action.sources <= set(Status)
        assert action.permission in PERMISSIONS
    assert workflow.allowed_actions("closed") == []
    assert workflow.allowed_actions("reported") == ["accept", "reject", "locate"]


def test_happy_path_from_report_to_close(db, categories, frozen_clock, admin_actor):
    event = report(db, who=None)
    staff, grid = actor(db, "cityadmin"), actor(db, "gridworker")
    go(db, event, "accept", admin_actor, expected_version=1)
    # Located and accepted: registered and dispatched by the rules at once.
    assert event.status == "dispatched" and event.stage == "handle"
    assert event.department_id == staff.department_id
    assert event.dispatch_reason.startswith("category default: 测试暴露垃圾 → 区综合行政执法局")
    assert event.due_at == timelimits.due_at(frozen_clock[0], 4, "working_hours")
    frozen_clock[0] += timedelta(minutes=30)
    go(db, event, "start", staff)
    assert event.status == "in_progress" and event.stage == "handle"
    go(db, event, "handle", staff, result="已清运")
    assert (event.status, event.stage, event.result) == ("handled", "verify", "已清运")
    go(db, event, "verify_pass", grid)
    assert (event.status, event.stage) == ("verified", "close")
    go(db, event, "close", admin_actor)
    assert (event.status, event.stage, event.due_at) == ("closed", None, None)
    assert event.closed_at == frozen_clock[0]
    steps = [(log.action, log.to_status) for log in service.timeline(db, event_id=event.id)]
    assert steps == [("report", "reported"), ("accept", "accepted"), ("register", "registered"),
                     ("dispatch", "dispatched"), ("start", "in_progress"), ("handle", "handled"),
                     ("verify_pass", "verified"), ("close", "closed")]
    assert service.timeline(db, event_id=event.id)[2].actor == "auto-dispatch"


def test_an_illegal_transition_is_refused_and_changes_nothing(db, categories, frozen_clock, admin_actor):
    event = report(db, who=None)
    db.flush()
    before = counts(db, event.id) | {"version": event.version, "status": event.status}
    with pytest.raises(InvalidTransition, match=r"cannot close an event that is reported; allowed now: "
                                                r"accept, reject, locate"):
        go(db, event, "close", admin_actor)
    with pytest.raises(Invalid, match="unknown action"):
        go(db, event, "explode", admin_actor)
    db.flush()
    assert counts(db, event.id) | {"version": event.version, "status": event.status} == before
    assert not db.dirty


def test_a_final_status_allows_nothing(db, categories, frozen_clock, admin_actor):
    event = report(db, who=None)
    go(db, event, "reject", admin_actor, reason="重复举报")
    assert event.status == "not_accepted" and event.stage is None
    with pytest.raises(InvalidTransition, match="allowed now: none"):
        go(db, event, "accept", admin_actor)


def test_required_reasons_and_results(db, dispatched, admin_actor):
    staff = actor(db, "cityadmin")
    before = counts(db, dispatched.id)
    with pytest.raises(Invalid, match="reason is required"):
        go(db, dispatched, "return", staff)
    with pytest.raises(Invalid, match="result is required"):
        go(db, dispatched, "handle", staff, result="  ")
    with pytest.raises(Invalid, match="department_code is required"):
        go(db, dispatched, "reassign", admin_actor, reason="错派")
    assert counts(db, dispatched.id) == before and dispatched.status == "dispatched"


def test_version_mismatch_is_a_conflict_and_changes_nothing(db, dispatched):
    staff = actor(db, "cityadmin")
    version = dispatched.version
    before = counts(db, dispatched.id)
    with pytest.raises(Conflict, match="changed by someone else"):
        go(db, dispatched, "start", staff, expected_version=version - 1)
    assert dispatched.status == "dispatched" and dispatched.version == version
    assert counts(db, dispatched.id) == before
    go(db, dispatched, "start", staff, expected_version=version)
    assert dispatched.version == version + 1


def test_two_sessions_acting_at_the_same_moment_one_wins_the_other_gets_a_conflict(
        connection, db, dispatched):
    db.commit()  # releases the savepoint: visible to the other session on this connection
    staff = actor(db, "cityadmin")
    other = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        stale = other.get(Event, dispatched.id)  # both loaded the same version
        other.commit()  # its read is over; the object (version 1) stays in its identity map
        assert stale.version == dispatched.version
        go(db, dispatched, "start", staff, expected_version=stale.version)
        db.commit()
        with pytest.raises(Conflict, match="same moment"):
            service.transition(other, event_id=stale.id, action="handle", actor=staff,
                               expected_version=stale.version, result="done")
    finally:
        other.close()
    db.refresh(dispatched)
    assert dispatched.status == "in_progress"


def test_staff_of_another_department_are_refused(db, dispatched):
    ecology = actor(db, "ecology")
    before = counts(db, dispatched.id)
    with pytest.raises(Forbidden, match="another department"):
        go(db, dispatched, "start", ecology)
    with pytest.raises(Forbidden, match="events:command"):
        go(db, dispatched, "close", ecology)
    assert counts(db, dispatched.id) == before and dispatched.status == "dispatched"


def test_a_grid_worker_verifies_only_in_their_township(db, categories, frozen_clock, admin_actor):
    event = report(db, who=None, township=WANGCUN)
    go(db, event, "accept", admin_actor)
    go(db, event, "handle", admin_actor, result="ok")
    with pytest.raises(Forbidden, match="township"):
        go(db, event, "verify_pass", actor(db, "gridworker"))
    assert event.status == "handled"


def test_failed_verification_sends_it_back_for_rework(db, dispatched, frozen_clock, admin_actor):
    staff, grid = actor(db, "cityadmin"), actor(db, "gridworker")
    go(db, dispatched, "handle", staff, result="扫了")
    with pytest.raises(Invalid, match="reason"):
        go(db, dispatched, "verify_fail", grid)
    go(db, dispatched, "verify_fail", grid, reason="仍有垃圾")
    assert (dispatched.status, dispatched.stage, dispatched.rework_count) == ("dispatched", "handle", 1)
    assert service.timeline(db, event_id=dispatched.id)[-1].note == "仍有垃圾"
    go(db, dispatched, "handle", staff, result="彻底清运")
    go(db, dispatched, "verify_pass", grid)
    assert dispatched.status == "verified" and dispatched.rework_count == 1


def test_extension_request_and_approval_moves_the_deadline(db, dispatched, admin_actor):
    staff = actor(db, "cityadmin")
    due = dispatched.due_at
    with pytest.raises(Invalid, match="no pending extension"):
        go(db, dispatched, "approve_extension", admin_actor)
    with pytest.raises(Invalid, match="value"):
        go(db, dispatched, "request_extension", staff, reason="需要机械", value=-1)
    go(db, dispatched, "request_extension", staff, reason="需要机械", value=2, unit="working_days")
    assert dispatched.extension_request["value"] == 2 and dispatched.due_at == due
    with pytest.raises(Invalid, match="already pending"):
        go(db, dispatched, "request_extension", staff, reason="again", value=1)
    go(db, dispatched, "approve_extension", admin_actor)
    assert dispatched.due_at == timelimits.due_at(due, 2, "working_days")
    assert dispatched.extension_request is None and dispatched.status == "dispatched"


def test_a_refused_extension_keeps_the_deadline(db, dispatched, admin_actor):
    staff = actor(db, "cityadmin")
    due = dispatched.due_at
    go(db, dispatched, "request_extension", staff, reason="忙", value=1, unit="working_days")
    go(db, dispatched, "refuse_extension", admin_actor, reason="不符合延期条件")
    assert dispatched.due_at == due and dispatched.extension_request is None


def test_suspension_stops_the_clock_and_resume_restores_it(db, dispatched, frozen_clock, admin_actor):
    left = dispatched.due_at - frozen_clock[0]
    go(db, dispatched, "suspend", admin_actor, reason="等待上级批复")
    assert (dispatched.status, dispatched.due_at) == ("suspended", None)
    frozen_clock[0] += timedelta(days=10)
    go(db, dispatched, "resume", admin_actor)
    assert (dispatched.status, dispatched.stage) == ("dispatched", "handle")
    assert dispatched.due_at == frozen_clock[0] + left


def test_return_by_the_department_goes_back_to_the_command_centre(db, dispatched, admin_actor):
    staff = actor(db, "cityadmin")
    go(db, dispatched, "return", staff, reason="不属于本部门职责")
    assert (dispatched.status, dispatched.department_id, dispatched.stage) == ("registered", None, "dispatch")
    assert "不属于本部门职责" in dispatched.dispatch_reason
    go(db, dispatched, "dispatch", admin_actor, department_code="housing", reason="住建负责")
    assert dispatched.dispatch_reason == "manual: → 区住房和城乡建设局 (住建负责)"


def test_reassign_needs_a_reason_and_records_it(db, dispatched, admin_actor):
    with pytest.raises(Invalid, match="reason"):
        go(db, dispatched, "reassign", admin_actor, department_code="ecology")
    go(db, dispatched, "reassign", admin_actor, department_code="ecology", reason="涉及污染")
    assert dispatched.department_id == actor(db, "ecology").department_id
    assert "涉及污染" in dispatched.dispatch_reason
    assert [a.role for a in service.assignments(db, event_id=dispatched.id)] == ["lead"]


def test_joint_handling_adds_assisting_departments_and_keeps_the_lead(db, dispatched, admin_actor):
    lead = dispatched.department_id
    with pytest.raises(Invalid, match="already the lead"):
        go(db, dispatched, "assist", admin_actor, department_codes=["cityadmin"])
    go(db, dispatched, "assist", admin_actor, department_codes=["ecology", "ts-silulu"])
    go(db, dispatched, "assist", admin_actor, department_codes=["ecology"])  # twice: no duplicate
    roles = [a.role for a in service.assignments(db, event_id=dispatched.id)]
    assert roles == ["lead", "assist", "assist"] and dispatched.department_id == lead


def test_every_transition_is_audited_with_before_and_after(db, dispatched, admin_actor):
    from sqlalchemy import select

    from citybrain.core.models import AuditLog

    go(db, dispatched, "start", actor(db, "cityadmin"))
    entry = db.scalars(select(AuditLog).where(AuditLog.action == "event.start")
                       .order_by(AuditLog.id.desc())).first()
    assert entry.before["status"] == "dispatched" and entry.after["status"] == "in_progress"
    assert entry.object_id == str(dispatched.id)


def test_the_township_hint_of_a_manual_event_is_not_enough_to_dispatch(db, categories, frozen_clock,
                                                                        admin_actor):
    event = report(db, who=None, township=None, address="丝绸路街道")
    go(db, event, "accept", admin_actor)
    go(db, event, "register", admin_actor)
    go(db, event, "dispatch", admin_actor)  # by hand: the rules use the township hint
    assert event.status == "dispatched" and event.township_code == SILULU
