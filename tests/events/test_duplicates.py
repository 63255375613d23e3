"""Duplicate reports: nearby suggestions and merging into a main event (or a clear refusal)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from citybrain.core.errors import Conflict, Forbidden, Invalid, NotFound
from citybrain.core.models import AuditLog
from citybrain.events import duplicates, service
from citybrain.events.models import Event
from event_helpers import SILULU, actor, counts, point_in, report


def at(db, dy_m: float = 0.0, township: str = SILULU) -> dict:
    lon, lat = point_in(db, township)
    return {"lon": lon, "lat": lat + dy_m / 111_195}


def test_haversine_matches_a_known_distance():
    # One degree of latitude is about 111.2 km on the mean sphere.
    assert duplicates.haversine_m(117.87, 36.80, 117.87, 37.80) == pytest.approx(111_195, rel=1e-3)


def test_suggests_open_events_of_the_same_small_class_nearby(db, categories, frozen_clock):
    main = report(db, who=None, township=None, **at(db))
    near = report(db, who=None, township=None, **at(db, 50))
    other_class = report(db, who=None, township=None, category_code="TE0102", **at(db, 10))
    far = report(db, who=None, township=None, **at(db, 300))
    assert duplicates.suggest_duplicates(db, event=near) == [main]
    assert other_class not in duplicates.suggest_duplicates(db, event=main)
    assert duplicates.suggest_duplicates(db, event=main) == [near]
    assert duplicates.suggest_duplicates(db, event=main, radius_m=500) == [near, far]
    assert duplicates.suggest_duplicates(db, event=main, radius_m=20) == []


def test_suggestions_respect_the_time_window_and_skip_closed_or_merged(db, categories, frozen_clock, admin_actor):
    old = report(db, who=None, township=None, **at(db))
    frozen_clock[0] += timedelta(hours=duplicates.DEFAULT_WINDOW_HOURS + 1)
    late = report(db, who=None, township=None, **at(db, 5))
    assert duplicates.suggest_duplicates(db, event=late) == []
    assert duplicates.suggest_duplicates(db, event=late, window_hours=100) == [old]
    service.transition(db, event_id=old.id, action="reject", actor=admin_actor, reason="重复")
    assert duplicates.suggest_duplicates(db, event=late, window_hours=100) == []


def test_merge_follows_the_main_event_and_is_logged_on_both(db, categories, frozen_clock, admin_actor):
    main = report(db, who=None, township=None, **at(db))
    dup = report(db, who=None, township=None, reporter_phone="13812345678", **at(db, 30))
    audits = counts(db)["audit"]
    merged = duplicates.merge(db, event_id=dup.id, into_id=main.id, actor=admin_actor,
                              expected_version=dup.version, note="同一处垃圾")
    assert merged is dup
    assert (dup.status, dup.duplicate_of_id, dup.due_at, dup.stage) == ("merged", main.id, None, None)
    assert main.status == "reported"
    assert [(log.action, log.to_status) for log in service.timeline(db, event_id=dup.id)][-1] == ("merge", "merged")
    last_main = service.timeline(db, event_id=main.id)[-1]
    assert last_main.action == "duplicate_merged" and last_main.data["duplicate"] == dup.tracking_no
    assert counts(db)["audit"] == audits + 1
    entry = db.scalar(select(AuditLog).order_by(AuditLog.id.desc()).limit(1))
    assert entry.action == "event.merge" and entry.after["into"] == main.tracking_no
    # The reporter of the duplicate follows the main event by their own tracking number.
    assert duplicates.resolve_tracking(db, dup.tracking_no) is main
    assert duplicates.resolve_tracking(db, main.tracking_no.lower()) is main
    assert duplicates.merged_reports(db, event_id=main.id) == [dup]
    service.transition(db, event_id=main.id, action="accept", actor=admin_actor)
    assert duplicates.resolve_tracking(db, dup.tracking_no).status == "dispatched"
    with pytest.raises(NotFound):
        duplicates.resolve_tracking(db, "ZC20990101-000001")


def _state(db, *events: Event) -> tuple:
    db.flush()
    return counts(db), [(e.status, e.duplicate_of_id, e.version) for e in events]


def test_every_bad_merge_is_refused_and_changes_nothing(db, categories, frozen_clock, admin_actor):
    main = report(db, who=None, township=None, **at(db))
    dup = report(db, who=None, township=None, **at(db, 20))
    other_class = report(db, who=None, township=None, category_code="TE0102", **at(db, 20))
    closed = report(db, who=None, township=None, **at(db, 40))
    service.transition(db, event_id=closed.id, action="reject", actor=admin_actor, reason="无效")
    staff = actor(db, "cityadmin")
    before = _state(db, main, dup, other_class, closed)

    cases = [
        (dict(event_id=dup.id, into_id=dup.id), Invalid, "into itself"),
        (dict(event_id=dup.id, into_id=closed.id), Invalid, "it is not_accepted"),
        (dict(event_id=closed.id, into_id=main.id), Invalid, "can no longer be merged"),
        (dict(event_id=other_class.id, into_id=main.id), Invalid, "across small classes"),
        (dict(event_id=dup.id, into_id=main.id, expected_version=dup.version + 1), Conflict, "changed by someone"),
        (dict(event_id=dup.id, into_id=999_999_999), NotFound, "does not exist"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            duplicates.merge(db, actor=admin_actor, **kwargs)
        assert _state(db, main, dup, other_class, closed) == before, kwargs
    with pytest.raises(Forbidden):
        duplicates.merge(db, event_id=dup.id, into_id=main.id, actor=staff)
    assert _state(db, main, dup, other_class, closed) == before

    duplicates.merge(db, event_id=dup.id, into_id=main.id, actor=admin_actor)
    after = _state(db, main, dup, other_class, closed)
    with pytest.raises(Conflict, match=f"already merged into {main.tracking_no}"):
        duplicates.merge(db, event_id=dup.id, into_id=main.id, actor=admin_actor)
    with pytest.raises(Invalid, match="it is merged"):
        duplicates.merge(db, event_id=main.id, into_id=dup.id, actor=admin_actor)
    assert _state(db, main, dup, other_class, closed) == after
