"""The NGSI-LD query parsers on their own: q language, safe patterns, geo-queries, time windows."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from citybrain.iot import ngsi_params as ngp
from citybrain.iot import ngsi_query as nq


def matches(q: str, entity: dict) -> bool:
    def lookup(path: tuple[str, ...]) -> tuple[bool, object]:
        value = entity.get(".".join(path))
        return (value is not None, value)

    return nq.evaluate(nq.parse_q(q), lookup)


ENTITY = {"pm25": 80.0, "pm10": 120, "status": "free", "open": False, "name": "站点 A-1",
          "pm25.observedAt": "2026-11-26T08:00:00.000Z", "ref": "urn:ngsi-ld:Device:x"}


@pytest.mark.parametrize(("q", "expected"), [
    ("pm25>75", True), ("pm25>80", False), ("pm25>=80", True), ("pm25<80.5", True), ("pm25<=79.9", False),
    ("pm25==80", True), ("pm25!=80", False), ("pm10==120.0", True),
    ("pm25==1..80", True), ("pm25==81..90", False), ("pm25!=81..90", True), ("pm25==-5..1e3", True),
    ('status=="free"', True), ('status=="free","occupied"', True), ('status!="free","occupied"', False),
    ('status>"a"', True), ('name=="站点 A-1"', True), ('name~="A-\\d$"', True), ('name!~="^x"', True),
    ("open==false", True), ("open==true", False), ("open!=true", True),
    ("pm25", True), ("missing", False), ("missing!=3", False),
    ("pm25.observedAt>2026-11-26T07:59:59Z", True), ("pm25.observedAt<2026-11-26T08:00:00Z", False),
    ("pm25.observedAt==2026-11-26", True),
    ("ref==urn:ngsi-ld:Device:x", True),
    ("pm25>100|pm10>100", True), ("pm25>100;pm10>100", False),
    ("pm25>100|pm10>100;status==\"busy\"", False),  # AND before OR
    ("(pm25>100|pm10>100);status==\"free\"", True),
    ("((pm25>1))", True), (" pm25 > 75 ; pm10 ", True),
    ('pm25=="80"', False), ('status>3', False),
])
def test_q_evaluates(q: str, expected: bool) -> None:
    assert matches(q, ENTITY) is expected


@pytest.mark.parametrize(("q", "words"), [
    ("", "empty"), ("pm25>", "expected a value"), ("pm25=3", "unknown operator"), (">3", "attribute name"),
    ("pm25>>3", "expected a value"), ("status==free", 'must be quoted: "free"'), ("(pm25>3", "expected ')'"),
    ("pm25>3)", "unexpected text"), ("pm25>3;", "attribute name"), ('a=="x', "unterminated"),
    ("a>1..3", "only allowed after == or !="), ("a>1,2", "only allowed after == or !="),
    ('a==1.."z"', "a range needs"), ("a>true", "needs a number"), ("a~=3", "quoted regular expression"),
    ('a~="(x+)+"', "nested repetition"), ("a==2026-13-40", "not a valid date"), ("(" * 30 + "a" + ")" * 30, "deeply"),
    ("a" * 2001, "longer than"),
])
def test_bad_q_is_refused_with_where(q: str, words: str) -> None:
    with pytest.raises(nq.QueryError) as info:
        nq.parse_q(q)
    assert words in str(info.value)


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a*)*b", "(a|aa)+", "(x+x+)+y", r"(\1)", "(?=a)b", "(?<!a)b",
                                     "(.*a){20}"])
def test_patterns_that_could_backtrack_catastrophically_are_refused(pattern: str) -> None:
    with pytest.raises(nq.QueryError):
        nq.compile_pattern(pattern, "idPattern")


def test_allowed_patterns_stay_fast_on_hostile_input() -> None:
    regex = nq.compile_pattern(r"^urn:ngsi-ld:[A-Za-z]+:aq-\d+.*x$", "idPattern")
    started = time.perf_counter()
    assert regex.search("urn:ngsi-ld:AirQualityObserved:aq-1" + "a" * 5000) is None
    assert time.perf_counter() - started < 0.1


def test_near_uses_geodesic_metres() -> None:
    geo = ngp.parse_geoquery("near;maxDistance==1000", "Point", "[117.87,36.8]")
    assert geo is not None
    # 0.01° of longitude at 36.8°N is about 891.6 m (it would be 1113 m at the equator).
    assert geo.matches(117.88, 36.8) and not geo.matches(117.8815, 36.8)
    ring = ngp.parse_geoquery("near;minDistance==500;maxDistance==1000", "Point", "[117.87,36.8]")
    assert ring is not None and not ring.matches(117.872, 36.8) and ring.matches(117.879, 36.8)


def test_within_and_intersects_polygon() -> None:
    box = "[[[117,36],[118,36],[118,37],[117,37],[117,36]]]"
    within = ngp.parse_geoquery("within", "Polygon", box)
    assert within is not None and within.matches(117.5, 36.5) and not within.matches(118.5, 36.5)
    assert within.matches(117, 36.5)  # on the edge counts
    point = ngp.parse_geoquery("equals", "Point", "[117.5,36.5]")
    assert point is not None and point.matches(117.5, 36.5) and not point.matches(117.5, 36.6)


@pytest.mark.parametrize(("args", "words"), [
    (("near;maxDistance==10", "Polygon", "[[[0,0],[1,0],[1,1],[0,0]]]"), "needs geometry=Point"),
    (("within;maxDistance==10", "Polygon", "[[[0,0],[1,0],[1,1],[0,0]]]"), "takes no modifiers"),
    (("near;radius==10", "Point", "[0,0]"), "maxDistance==<metres>"),
    (("within", "Point", "[0]"), "[lon, lat]"),
    (("within", "Point", "[0,true]"), "[lon, lat]"),
    (("within", "Point", "[0,91]"), "not a WGS-84"),
    (("within", "Point", "[NaN,1]"), "JSON array"),
    (("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]"), "end where it starts"),
    (("within", "Polygon", "[]"), "nested"),
    (("within", "LineString", "[[0,0]]"), "do not form a LineString"),
])
def test_bad_geo_queries(args: tuple[str, str, str], words: str) -> None:
    with pytest.raises(nq.QueryError) as info:
        ngp.parse_geoquery(*args)
    assert words in str(info.value)


def test_no_geoquery_when_nothing_given() -> None:
    assert ngp.parse_geoquery(None, None, None) is None


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_time_windows() -> None:
    at, end = "2026-11-26T08:00:00Z", "2026-11-26T09:00:00+01:00"
    assert ngp.parse_timequery({}) == ngp.TimeQuery()
    assert ngp.parse_timequery({"timerel": "before", "timeAt": at}) == ngp.TimeQuery(None, ms("2026-11-26T08:00:00"))
    assert ngp.parse_timequery({"timerel": "after", "timeAt": at, "lastN": "3"}) == ngp.TimeQuery(
        ms("2026-11-26T08:00:00") + 1, None, 3)
    # 09:00+01:00 is 08:00Z: an empty window is refused, not silently answered.
    with pytest.raises(nq.QueryError, match="later"):
        ngp.parse_timequery({"timerel": "between", "timeAt": at, "endTimeAt": end})


@pytest.mark.parametrize(("limit", "offset", "expected"), [
    (None, None, (20, 0)), ("1000", "5", (1000, 5)), ("1", "0", (1, 0)),
])
def test_paging(limit: str | None, offset: str | None, expected: tuple[int, int]) -> None:
    assert ngp.parse_paging(limit, offset) == expected


@pytest.mark.parametrize(("limit", "offset"), [("0", None), ("1001", None), ("abc", None), ("-3", None),
                                               ("1.5", None), (None, "-1"), (None, "x")])
def test_bad_paging(limit: str | None, offset: str | None) -> None:
    with pytest.raises(nq.QueryError):
        ngp.parse_paging(limit, offset)
