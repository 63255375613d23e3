"""Loading the catalog into the database, and administrators editing it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from citybrain.core import audit
from citybrain.core.actor import Actor
from citybrain.core.errors import Forbidden, Invalid, NotFound
from citybrain.events import catalog
from citybrain.events.models import Event, EventCategory

SHIPPED = {row["code"] for row in catalog.load_catalog_rows()}


@pytest.fixture
def events_admin(admin_actor: Actor) -> Actor:
    # The system actor carries every registered permission; add events:admin explicitly so this
    # test does not depend on when the permission is registered.
    return replace(admin_actor, permissions=admin_actor.permissions | {"events:admin"})


@pytest.fixture
def loaded(db: Session, admin_actor: Actor) -> Session:
    catalog.sync_catalog(db, actor=admin_actor)
    return db


def _codes(db: Session) -> set[str]:
    return set(db.scalars(select(EventCategory.code)))


def _last_entry(db: Session):  # noqa: ANN202
    return audit.list_entries(db, limit=1, object_type="event_category")[0]


def test_sync_adds_every_missing_class_and_then_nothing(db: Session, admin_actor: Actor) -> None:
    missing = SHIPPED - _codes(db)
    assert catalog.sync_catalog(db, actor=admin_actor) == len(missing)
    assert _codes(db) >= SHIPPED
    assert catalog.sync_catalog(db, actor=admin_actor) == 0


def test_sync_restores_a_missing_class_and_audits_once(loaded: Session, admin_actor: Actor) -> None:
    db = loaded
    unused = ~exists().where(Event.category_code == EventCategory.code)
    victim = db.scalar(select(EventCategory).where(EventCategory.code.in_(SHIPPED), unused).limit(1))
    assert victim is not None
    code = victim.code
    db.delete(victim)
    db.flush()
    before_id = audit.list_entries(db, limit=1)[0].id
    assert catalog.sync_catalog(db, actor=admin_actor) == 1
    entry = _last_entry(db)
    assert entry.id == before_id + 1
    assert (entry.action, entry.after) == ("event_category.load", {"created": 1})
    assert catalog.get_category(db, code=code).active is True


def test_sync_keeps_an_administrators_edits(loaded: Session, admin_actor: Actor, events_admin: Actor) -> None:
    catalog.update_category(loaded, code="E0101", changes={"urgency": "urgent"}, actor=events_admin)
    catalog.sync_catalog(loaded, actor=admin_actor)
    assert catalog.get_category(loaded, code="E0101").urgency == "urgent"


def test_shipped_time_limits_are_stored_per_stage(loaded: Session) -> None:
    category = catalog.get_category(loaded, code="E0101")
    assert category.name == "暴露垃圾"
    assert category.time_limits["handle"] == {"value": 4, "unit": "working_hours"}
    assert set(category.time_limits) == set(catalog.STAGES)


def test_list_filters_public_and_active(loaded: Session, events_admin: Actor) -> None:
    all_codes = {c.code for c in catalog.list_categories(loaded)}
    public_codes = {c.code for c in catalog.list_categories(loaded, public_only=True)}
    assert all_codes >= SHIPPED
    assert "C0604" in all_codes and "C0604" not in public_codes  # video cameras: staff only
    catalog.update_category(loaded, code="E0112", changes={"active": False}, actor=events_admin)
    assert "E0112" not in {c.code for c in catalog.list_categories(loaded)}
    assert "E0112" in {c.code for c in catalog.list_categories(loaded, active_only=False)}


def test_get_unknown_category_is_not_found(loaded: Session) -> None:
    with pytest.raises(NotFound):
        catalog.get_category(loaded, code="E9999")


def test_update_merges_time_limits_and_audits_before_and_after(loaded: Session, events_admin: Actor) -> None:
    category = catalog.update_category(
        loaded,
        code="E0101",
        actor=events_admin,
        changes={"time_limits": {"handle": "1 working_days"}, "department_code": "ecology"},
    )
    assert category.time_limits["handle"] == {"value": 1, "unit": "working_days"}
    assert category.time_limits["accept"] == {"value": 1, "unit": "working_hours"}
    entry = _last_entry(loaded)
    assert (entry.action, entry.object_id) == ("event_category.update", "E0101")
    assert entry.before["time_limits"]["handle"] == {"value": 4, "unit": "working_hours"}
    assert entry.after["time_limits"]["handle"] == {"value": 1, "unit": "working_days"}
    assert (entry.before["department_code"], entry.after["department_code"]) == ("cityadmin", "ecology")


def test_update_is_stored_in_the_database(loaded: Session, events_admin: Actor) -> None:
    catalog.update_category(
        loaded, code="E0103", changes={"time_limits": {"handle": "5 working_hours"}}, actor=events_admin
    )
    loaded.expire_all()
    stored = loaded.get(EventCategory, "E0103")
    assert stored is not None and stored.time_limits["handle"] == {"value": 5, "unit": "working_hours"}


@pytest.mark.parametrize(
    "changes",
    [
        {"code": "E9999"},
        {"kind": "component"},
        {"department_code": "no-such-department"},
        {"urgency": "high"},
        {"public": "yes"},
        {"name": "  "},
        {"time_limits": {"handle": "4 hours"}},
        {"time_limits": {"handle": {"value": -1, "unit": "working_hours"}}},
        {"time_limits": {"repair": "4 working_hours"}},
        {"time_limits": "4 working_hours"},
    ],
)
def test_invalid_update_is_refused_and_changes_nothing(loaded: Session, events_admin: Actor, changes: dict) -> None:
    before = catalog._snapshot(catalog.get_category(loaded, code="E0101"))
    with pytest.raises(Invalid):
        catalog.update_category(loaded, code="E0101", changes=changes, actor=events_admin)
    assert catalog._snapshot(catalog.get_category(loaded, code="E0101")) == before


def test_update_needs_the_events_admin_permission(loaded: Session) -> None:
    clerk = Actor(user_id=None, username="clerk", role="staff", permissions=frozenset({"geo:read"}))
    with pytest.raises(Forbidden):
        catalog.update_category(loaded, code="E0101", changes={"urgency": "urgent"}, actor=clerk)


def test_match_category_suggests_an_active_class(loaded: Session, events_admin: Actor) -> None:
    match = catalog.match_category(loaded, text="小区门口乱扔垃圾没人清理")
    assert match is not None and match.code == "E0101"
    catalog.update_category(loaded, code="E0101", changes={"active": False}, actor=events_admin)
    match = catalog.match_category(loaded, text="小区门口乱扔垃圾没人清理")
    assert match is None or match.code != "E0101"
    assert catalog.match_category(loaded, text="   ") is None
