"""Intake: every channel ends in service.report — classify, locate, number, start the clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from citybrain.core.errors import Forbidden, Invalid, NotFound
from citybrain.core.models import AuditLog
from citybrain.events import service, timelimits
from citybrain.events.models import Event
from citybrain.geo import coords
from event_helpers import SILULU, WANGCUN, actor, counts, point_in, report  # noqa: F401


def test_a_citizen_report_is_located_numbered_and_waits_for_acceptance(db, categories, frozen_clock):
    event = report(db, who=None, reporter_name="张三", reporter_phone="13812345678")
    assert event.tracking_no == "ZC20261126-000001"  # 08:00 UTC is 16:00 on the 26th in China
    assert (event.status, event.stage, event.location_state) == ("reported", "accept", "located")
    assert event.township_code == SILULU and event.grid_code
    assert event.urgency == "normal" and event.version == 1
    assert event.due_at == timelimits.due_at(frozen_clock[0], 1, "working_hours")
    assert datetime(2026, 11, 26, 9, 0, tzinfo=UTC) == event.due_at  # 16:00 CST + 1 working hour
    [log] = service.timeline(db, event_id=event.id)
    assert (log.action, log.to_status, log.actor) == ("report", "reported", "public")


def test_tracking_numbers_follow_the_china_date_and_a_daily_sequence(db, categories, frozen_clock):
    first, second = report(db, who=None), report(db, who=None)
    assert second.tracking_no == "ZC20261126-000002" != first.tracking_no
    frozen_clock[0] = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)  # 00:30 on the 27th in China
    assert report(db, who=None).tracking_no == "ZC20261127-000001"
    assert service.get_by_tracking(db, tracking_no="zc20261126-000002").id == second.id


def test_the_audit_entry_holds_no_personal_data_beyond_a_masked_phone(db, categories, frozen_clock):
    event = report(db, who=None, reporter_name="张三", reporter_phone="13812345678",
                   reporter_email="z@example.com")
    entry = db.scalars(select(AuditLog).where(AuditLog.object_type == "event",
                                              AuditLog.object_id == str(event.id))).one()
    text = str(entry.after)
    assert entry.after["reporter_phone"] == "138****5678"
    assert "张三" not in text and "13812345678" not in text and "example.com" not in text


def test_a_point_outside_the_district_is_refused_and_nothing_is_stored(db, categories, frozen_clock):
    before = counts(db)
    with pytest.raises(Invalid, match="outside the district"):
        report(db, who=None, township=None, lon=116.397, lat=39.909)  # Beijing
    assert counts(db) == before


@pytest.mark.parametrize("lon,lat", [(117.85, 95.0), (200.0, 36.8), (float("nan"), 36.8)])
def test_invalid_coordinates_are_refused_and_nothing_is_stored(db, categories, frozen_clock, lon, lat):
    before = counts(db)
    with pytest.raises(Invalid, match="coordinates|outside"):
        report(db, who=None, township=None, lon=lon, lat=lat)
    assert counts(db) == before


def test_half_a_point_or_no_location_at_all_is_refused(db, categories, frozen_clock):
    with pytest.raises(Invalid, match="both lon and lat"):
        report(db, who=None, township=None, lon=117.85)
    with pytest.raises(Invalid, match="location is required"):
        report(db, who=None, township=None)


def test_unknown_inactive_and_non_public_categories_are_refused(db, categories, frozen_clock):
    before = counts(db)
    with pytest.raises(Invalid, match="unknown event category"):
        report(db, who=None, category_code="NOPE")
    with pytest.raises(Invalid, match="unknown event category"):
        report(db, who=None, category_code="TE0301")
    with pytest.raises(Invalid, match="not open to public"):
        report(db, who=None, category_code="TE0201")
    with pytest.raises(Invalid, match="not open to public"):
        report(db, who=actor(db, "citizen"), category_code="TE0201")
    assert counts(db) == before
    staff = report(db, who=actor(db, "cityadmin"), channel="hotline", category_code="TE0201")
    assert staff.category_code == "TE0201"


def test_the_public_cannot_use_staff_channels(db, categories, frozen_clock):
    with pytest.raises(Forbidden):
        report(db, who=None, channel="sensor")


def test_gcj02_input_is_converted_to_wgs84(db, categories, frozen_clock):
    lon, lat = point_in(db, WANGCUN)
    glon, glat = coords.wgs84_to_gcj02(lon, lat)
    event = report(db, who=None, township=None, lon=glon, lat=glat, crs="gcj02")
    assert event.lon == pytest.approx(lon, abs=1e-5) and event.lat == pytest.approx(lat, abs=1e-5)
    assert event.township_code == WANGCUN


def test_an_address_without_coordinates_waits_in_the_manual_queue(db, categories, frozen_clock):
    event = report(db, who=None, township=None, address="王村镇某村东头")
    assert event.location_state == "manual" and event.lon is None and event.grid_code is None
    assert event.township_code == WANGCUN  # a hint from the address; the point is still missing
    unknown = report(db, who=None, township=None, address="不知道在哪里")
    assert unknown.location_state == "manual" and unknown.township_code is None


def test_the_manual_queue_is_cleared_by_locating_then_dispatch_follows(db, categories, frozen_clock, admin_actor):
    event = report(db, who=None, township=None, address="不知道在哪里")
    service.transition(db, event_id=event.id, action="accept", actor=admin_actor)
    assert event.status == "accepted"  # no point: stays with the command centre
    lon, lat = point_in(db, SILULU)
    service.transition(db, event_id=event.id, action="locate", actor=admin_actor, lon=lon, lat=lat)
    assert (event.location_state, event.township_code, event.status) == ("located", SILULU, "dispatched")


def test_urgency_comes_from_the_category_unless_given(db, categories, frozen_clock):
    assert report(db, who=None).urgency == "normal"
    assert report(db, who=None, urgency="urgent").urgency == "urgent"


def test_unknown_event_and_tracking_number_are_not_found(db, categories):
    with pytest.raises(NotFound):
        service.get_event(db, event_id=999_999)
    with pytest.raises(NotFound):
        service.get_by_tracking(db, tracking_no="ZC19990101-000001")


def test_department_staff_list_only_their_departments_events(db, categories, frozen_clock, admin_actor):
    mine = report(db, who=None)
    service.transition(db, event_id=mine.id, action="accept", actor=admin_actor)
    other = report(db, who=None, category_code="TE0102")  # township office of 丝绸路街道
    service.transition(db, event_id=other.id, action="accept", actor=admin_actor)
    cityadmin = actor(db, "cityadmin")
    seen = {e.id for e in service.list_events(db, actor=cityadmin)}
    assert mine.id in seen and other.id not in seen
    service.transition(db, event_id=other.id, action="assist", actor=admin_actor, department_codes=["cityadmin"])
    assert other.id in {e.id for e in service.list_events(db, actor=cityadmin)}
    everything = {e.id for e in service.list_events(db, actor=actor(db, "leader"))}
    assert {mine.id, other.id} <= everything
    with pytest.raises(Forbidden):
        service.list_events(db, actor=actor(db, "citizen"))


def test_list_filters(db, categories, frozen_clock, admin_actor):
    a = report(db, who=None)
    b = report(db, who=None, township=WANGCUN, category_code="TE0102")
    leader = actor(db, "leader")
    ids = lambda **kw: {e.id for e in service.list_events(db, actor=leader, ids=[a.id, b.id], **kw)}  # noqa: E731
    assert ids(township_code=WANGCUN) == {b.id}
    assert ids(category_code="TE0101") == {a.id}
    assert ids(status="reported") == {a.id, b.id}
    assert ids(overdue=True) == set()
    frozen_clock[0] = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert ids(overdue=True) == {a.id, b.id}


def test_a_grid_worker_sees_the_events_of_their_township(db, categories, frozen_clock):
    here = report(db, who=None)
    there = report(db, who=None, township=WANGCUN)
    seen = {e.id for e in service.list_events(db, actor=actor(db, "gridworker"))}
    assert here.id in seen and there.id not in seen


def test_events_table_has_one_row_per_report(db, categories, frozen_clock):
    report(db, who=None)
    assert db.scalar(select(Event).where(Event.category_code == "TE0101")) is not None


def test_a_tracking_number_taken_by_a_concurrent_report_is_retried(db, categories, frozen_clock, monkeypatch):
    first = report(db, who=None)
    real = service._next_tracking_no
    answers = iter([first.tracking_no])  # what a racing transaction would have computed too

    def racing(db_, day):
        return next(answers, None) or real(db_, day)

    monkeypatch.setattr(service, "_next_tracking_no", racing)
    second = report(db, who=None)
    assert second.tracking_no == "ZC20261126-000002"
    assert len(service.timeline(db, event_id=second.id)) == 1
