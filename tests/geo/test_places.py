"""Named places: loading the packaged files, converting their coordinates, matching addresses."""

from __future__ import annotations

import csv
import io
from importlib import resources

import pytest
from sqlalchemy import delete, func, select

from citybrain.core.models import AuditLog
from citybrain.geo import coords
from citybrain.geo import service as geo_service
from citybrain.geo.places import Place, PlaceInput, clean_name, load_places, match_place, shipped_places

EXPECTED = {"周村区人民政府", "周村古商城", "齐鲁医药学院", "山东农业工程学院淄博校区", "山东轻工职业学院"}


def _named_rows() -> dict[str, dict[str, str]]:
    text = resources.files("citybrain.geo").joinpath("data", "zhoucun_named_places.csv").read_text("utf-8")
    return {clean_name(r["name"]): r for r in csv.DictReader(io.StringIO(text)) if r["lon_wgs84_derived"]}


def test_clean_name_drops_notes_but_keeps_campus_names():
    assert clean_name("周村区人民政府（区政府驻地，按高德/DataV区划中心点）") == "周村区人民政府"
    assert clean_name("山东农业工程学院（淄博校区）") == "山东农业工程学院淄博校区"


def test_the_demo_loads_every_located_place_with_its_township(db):
    places = {p.name: p for p in db.scalars(select(Place))}
    assert set(places) == EXPECTED
    townships = {d.code for d in geo_service.list_divisions(db) if d.level == "township"}
    for place in places.values():
        assert place.township_code in townships
        assert place.township_code == geo_service.locate(db, lon=place.lon, lat=place.lat)["township_code"]
        assert place.source and place.confidence in {"medium", "low"}
    assert "古商城" in places["周村古商城"].aliases and "区政府" in places["周村区人民政府"].aliases


def test_coordinates_are_the_wgs84_conversion_of_the_stated_crs(db):
    """Both files give the same GCJ-02 points; ours match the derived WGS-84 columns within ~1 m."""
    named = _named_rows()
    by_name = {p.name: p for p in shipped_places()}
    for name, row in named.items():
        wlon, wlat = coords.gcj02_to_wgs84(float(row["lon"]), float(row["lat"]))
        assert abs(wlon - float(row["lon_wgs84_derived"])) < 1e-5 and abs(wlat - float(row["lat_wgs84_derived"])) < 1e-5
        place = by_name[name]
        assert abs(place.lon - float(row["lon_wgs84_derived"])) < 1e-5, name
        assert abs(place.lat - float(row["lat_wgs84_derived"])) < 1e-5, name
    # GCJ-02 around Zhoucun is about 520 m east of WGS-84: the raw value must not be stored.
    assert abs(by_name["山东轻工职业学院"].lon - 117.85548) > 0.005


def test_loading_again_adds_nothing(db, admin_actor):
    assert load_places(db, actor=admin_actor) == 0


def test_load_adds_missing_places_skips_outside_ones_and_audits(db, admin_actor):
    db.execute(delete(Place).where(Place.name == "周村古商城"))
    audits = select(func.count()).select_from(AuditLog).where(AuditLog.action == "geo.load_places")
    before = db.scalar(audits)
    outside = PlaceInput(name="山东理工大学", kind="university", lon=117.99, lat=36.81, source="t", license="",
                         confidence="low")
    assert load_places(db, actor=admin_actor, places=[*shipped_places(), outside]) == 1
    assert db.scalar(select(Place).where(Place.name == "山东理工大学")) is None
    assert db.scalar(audits) == before + 1


@pytest.mark.parametrize(("text", "expected"), [
    ("周村古商城东门", "周村古商城"),
    ("古商城北边停车场", "周村古商城"),
    ("区政府 西侧路口", "周村区人民政府"),
    ("周村区人民政府门口", "周村区人民政府"),
    ("山东农业工程学院淄博校区南门", "山东农业工程学院淄博校区"),
    ("农业工程学院宿舍楼", "山东农业工程学院淄博校区"),
    ("轻工学院东", "山东轻工职业学院"),
])
def test_match_by_name_or_alias(db, text, expected):
    place = match_place(db, text=text)
    assert place is not None and place.name == expected


@pytest.mark.parametrize("text", ["", "   ", "青年路某小区3号楼", "王村镇政府", "张店区人民公园"])
def test_no_known_place_is_none(db, text):
    assert match_place(db, text=text) is None
