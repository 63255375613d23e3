"""An address without coordinates: located at a known place, else a hint and the manual queue."""

from __future__ import annotations

from sqlalchemy import select

from citybrain.events import service
from citybrain.events.enums import LocationState
from citybrain.geo import service as geo_service
from citybrain.geo.places import Place
from event_helpers import SILULU, WANGCUN, report


def test_a_citizen_report_naming_a_known_place_is_located_there(db, categories):
    place = db.scalar(select(Place).where(Place.name == "周村古商城"))
    event = report(db, who=None, township=None, address="周村古商城东门")
    assert event.location_state == LocationState.LOCATED
    assert (event.lon, event.lat) == (round(place.lon, 7), round(place.lat, 7))
    found = geo_service.locate(db, lon=place.lon, lat=place.lat)
    assert (event.township_code, event.grid_code) == (found["township_code"], found["grid_code"])
    assert event.grid_code


def test_a_short_form_locates_too(db, categories):
    event = report(db, who=None, township=None, address="区政府对面人行道")
    assert event.location_state == LocationState.LOCATED and event.township_code


def test_an_unknown_address_waits_in_the_manual_queue(db, categories):
    event = report(db, who=None, township=None, address="某某路88号")
    assert event.location_state == LocationState.MANUAL
    assert (event.lon, event.lat, event.township_code, event.grid_code) == (None, None, None, None)


def test_a_township_name_is_only_a_hint(db, categories):
    event = report(db, who=None, township=None, address="王村镇东街口")
    assert event.location_state == LocationState.MANUAL
    assert event.township_code == WANGCUN and event.lon is None


def test_match_address_without_an_event_returns_the_township(db):
    assert service.match_address(db, address="丝绸路街道办事处") == SILULU
    place = db.scalar(select(Place).where(Place.name == "周村古商城"))
    assert service.match_address(db, address="周村古商城") == place.township_code
    assert service.match_address(db, address="  ") is None
