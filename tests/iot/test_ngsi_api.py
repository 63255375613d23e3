"""The NGSI-LD context API through the real app: registered devices, states and telemetry
written into the test database, answers checked as an NGSI-LD client reads them."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import orjson
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from citybrain.core.actor import system_actor
from citybrain.iot import ngsi, registry
from citybrain.iot.models import Device, DeviceState, Telemetry
from citybrain.iot.registry import DeviceIn
from helpers import token_for

ACTOR = system_actor("test")
BASE = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
HOUR = 3_600_000
T0 = (int(time.time() * 1000) // HOUR - 2) * HOUR  # two hours ago, on the hour
# (key, product, department, lon, lat, latest values)
DEVICES = [
    ("aq-1", "air_quality_station", "ecology", 117.870, 36.800, {"pm25": 80.0, "pm10": 120.0, "humidity": 55.0}),
    ("aq-2", "air_quality_station", "ecology", 117.880, 36.800, {"pm25": 40.0, "pm10": 60.0, "temperature": 12.5}),
    ("aq-3", "air_quality_station", "ecology", 117.900, 36.800, {"pm25": 120.0, "so2": 10.0}),
    ("aq-4", "air_quality_station", "cityadmin", 117.860, 36.790, {"pm25": 90.0}),
    ("aq-5", "air_quality_station", "ecology", 117.875, 36.805, None),  # never reported
    ("wq-1", "water_quality_station", "ecology", 117.860, 36.810, {"ph": 7.2, "do": 6.5, "nh3n": 0.4, "tp": 0.1}),
    ("pk-1", "parking_detector", "cityadmin", 117.871, 36.801, {"occupied": True, "battery": 80}),
    ("pk-2", "parking_detector", "cityadmin", 117.872, 36.801, {"occupied": False, "battery": 35}),
    ("wl-1", "waterlogging_gauge", "cityadmin", 117.865, 36.795, {"level_cm": 12.0, "battery": 90}),
]


def aq(key: str) -> str:
    return f"urn:ngsi-ld:AirQualityObserved:{key}"


@pytest.fixture
def world(db: Session) -> dict[str, int]:
    registry.sync_products(db, actor=ACTOR)
    # The demo district may ship devices of its own; retired devices leave the context (rolled back after).
    db.execute(update(Device).values(state="retired"))
    ids = {}
    for key, product, dept, lon, lat, values in DEVICES:
        device, _ = registry.register(db, DeviceIn(key=key, name=f"站点 {key}", product=product, department_code=dept,
                                                   lon=lon, lat=lat, address=f"{key} 路"), actor=ACTOR)
        ids[key] = device.id
        if values is not None:
            db.add(DeviceState(device_id=device.id, ts=T0, data=values, last_seen=T0, status=None))
    # aq-1's history: one reading every 10 minutes for an hour before T0, the last one is the state.
    for i in range(7):
        ts = T0 - HOUR + i * 600_000
        data = {"pm25": 50.0 + i * 5, "pm10": 100.0} if i < 6 else DEVICES[0][5]
        if i == 3:
            data = {"pm10": 101.0}  # a reading without pm25
        db.add(Telemetry(device_id=ids["aq-1"], ts=ts, data=data))
    db.commit()
    return ids


@pytest.fixture
def admin(client) -> dict[str, str]:  # noqa: ANN001
    return token_for(client, "admin")


def get(client, path: str, headers: dict[str, str], **params):  # noqa: ANN001, ANN003, ANN201
    return client.get(BASE + path, params=params, headers=headers)


def ids_of(response) -> list[str]:  # noqa: ANN001
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


def assert_problem(response, status: int, kind: str, *words: str) -> None:  # noqa: ANN001
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == ERR + kind and body["title"] and body["detail"], body
    for word in words:
        assert word in body["detail"], body["detail"]


# --- the acceptance query and the entity shape ----------------------------------------------------


def test_acceptance_query_returns_the_stations_over_75(client, world, admin) -> None:  # noqa: ANN001
    response = get(client, "/entities", admin, type="AirQualityObserved", q="pm25>75")
    assert ids_of(response) == [aq("aq-1"), aq("aq-3"), aq("aq-4")]
    first = response.json()[0]
    observed = ngsi.iso_ms(T0)
    assert first["type"] == "AirQualityObserved"
    assert first["pm25"] == {"type": "Property", "value": 80.0, "observedAt": observed, "unitCode": "GQ"}
    # SDM relativeHumidity is a 0..1 ratio; the station reports %.
    assert first["relativeHumidity"] == {"type": "Property", "value": 0.55, "observedAt": observed, "unitCode": "C62"}
    assert first["location"] == {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [117.87, 36.8]}}
    assert first["airQualityIndex"]["value"] == 107  # HJ 633: PM2.5 80 → IAQI 107, PM10 120 → IAQI 85
    assert "humidity" not in first
    link = response.headers["link"]
    assert link.startswith("<http://testserver/ngsi-ld/v1/context.jsonld>")
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in link


def test_types_map_water_parking_and_other_devices(client, world, admin) -> None:  # noqa: ANN001
    water = get(client, "/entities/urn:ngsi-ld:WaterQualityObserved:wq-1", admin, options="keyValues").json()
    assert {k: water[k] for k in ("pH", "O2", "NH4", "P-TOT")} == {"pH": 7.2, "O2": 6.5, "NH4": 0.4, "P-TOT": 0.1}
    spots = get(client, "/entities", admin, type="ParkingSpot", options="keyValues").json()
    assert [(s["id"], s["status"], s["batteryLevel"]) for s in spots] == [
        ("urn:ngsi-ld:ParkingSpot:pk-1", "occupied", 0.8), ("urn:ngsi-ld:ParkingSpot:pk-2", "free", 0.35)]
    [gauge] = get(client, "/entities", admin, type="Device").json()
    assert gauge["id"] == "urn:ngsi-ld:Device:wl-1"
    assert gauge["level_cm"] == {"type": "Property", "value": 12.0, "observedAt": ngsi.iso_ms(T0), "unitCode": "CMT"}
    assert gauge["controlledProperty"]["value"] == ["level_cm", "batteryLevel"]
    assert gauge["deviceState"]["value"] == "offline"  # last heard two hours ago, timeout 15 min
    every = get(client, "/entities", admin, type=",".join(ngsi.ALL_TYPES), limit="100")
    assert len(ids_of(every)) == len(DEVICES)


def test_key_values_and_simplified_are_the_same(client, world, admin) -> None:  # noqa: ANN001
    a = get(client, "/entities", admin, id=aq("aq-2"), options="keyValues").json()
    b = get(client, "/entities", admin, id=aq("aq-2"), format="simplified").json()
    assert a == b == [{"id": aq("aq-2"), "type": "AirQualityObserved", "name": "站点 aq-2",
                       "address": {"streetAddress": "aq-2 路"},
                       "location": {"type": "Point", "coordinates": [117.88, 36.8]},
                       "dateObserved": ngsi.iso_ms(T0), "pm25": 40.0, "pm10": 60.0, "temperature": 12.5,
                       "airQualityIndex": 57}]


# --- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("q", "expected"), [
    ("pm25>75", ["aq-1", "aq-3", "aq-4"]),
    ("pm25>=80;pm25<=90", ["aq-1", "aq-4"]),
    ("pm25==40..90", ["aq-1", "aq-2", "aq-4"]),
    ("pm25!=40..90", ["aq-3"]),
    ("pm25==40,120", ["aq-2", "aq-3"]),
    ("pm25!=40,120", ["aq-1", "aq-4"]),
    ("pm25<50|so2>5", ["aq-2", "aq-3"]),
    ("(pm25<50|so2>5);pm10", ["aq-2"]),
    ("pm25>100|pm25<50;temperature>10", ["aq-2", "aq-3"]),  # ; binds tighter than |
    ("temperature", ["aq-2"]),
    ("relativeHumidity>0.5", ["aq-1"]),
    ("airQualityIndex>100", ["aq-1", "aq-3", "aq-4"]),
    ("name==\"站点 aq-4\"", ["aq-4"]),
    ("name~=\"aq-[12]$\"", ["aq-1", "aq-2"]),
    (f"pm25.observedAt>={ngsi.iso_ms(T0)}", ["aq-1", "aq-2", "aq-3", "aq-4"]),
    (f"pm25.observedAt<{ngsi.iso_ms(T0)}", []),
    ("pm25==\"80\"", []),  # a string never equals a number
])
def test_q_language_on_real_states(client, world, admin, q, expected) -> None:  # noqa: ANN001
    response = get(client, "/entities", admin, type="AirQualityObserved", q=q)
    assert ids_of(response) == [aq(k) for k in expected]


def test_q_on_strings_and_booleans(client, world, admin) -> None:  # noqa: ANN001
    assert ids_of(get(client, "/entities", admin, type="ParkingSpot", q='status=="free"')) == [
        "urn:ngsi-ld:ParkingSpot:pk-2"]
    assert ids_of(get(client, "/entities", admin, type="ParkingSpot", q='status=="free","occupied";batteryLevel<0.5')
                  ) == ["urn:ngsi-ld:ParkingSpot:pk-2"]


def test_id_list_pattern_attrs_and_paging(client, world, admin) -> None:  # noqa: ANN001
    assert ids_of(get(client, "/entities", admin, id=f"{aq('aq-3')},{aq('aq-1')},urn:ngsi-ld:ParkingSpot:aq-2")) == [
        aq("aq-1"), aq("aq-3")]
    assert ids_of(get(client, "/entities", admin, idPattern="^urn:ngsi-ld:[A-Za-z]+:pk-")) == [
        "urn:ngsi-ld:ParkingSpot:pk-1", "urn:ngsi-ld:ParkingSpot:pk-2"]
    only = get(client, "/entities", admin, type="AirQualityObserved", attrs="so2").json()
    assert only == [{"id": aq("aq-3"), "type": "AirQualityObserved",
                     "so2": {"type": "Property", "value": 10.0, "observedAt": ngsi.iso_ms(T0), "unitCode": "GQ"}}]
    # An expanded attribute IRI from our @context means the same as its short name.
    expanded = get(client, "/entities", admin, type="AirQualityObserved",
                   attrs="https://smartdatamodels.org/dataModel.Environment/so2").json()
    assert expanded == only
    page = get(client, "/entities", admin, type="AirQualityObserved", limit="2", offset="1", count="true")
    assert ids_of(page) == [aq("aq-2"), aq("aq-3")]
    assert page.headers["NGSILD-Results-Count"] == "5"
    assert "NGSILD-Results-Count" not in get(client, "/entities", admin, type="AirQualityObserved").headers


def test_geo_queries_measure_metres_on_the_ellipsoid(client, world, admin) -> None:  # noqa: ANN001
    point = "[117.87,36.8]"
    near = get(client, "/entities", admin, type="AirQualityObserved", georel="near;maxDistance==1000",
               geometry="Point", coordinates=point)
    assert ids_of(near) == [aq("aq-1"), aq("aq-2"), aq("aq-5")]  # aq-2 is 892 m east, aq-5 ~700 m
    tight = get(client, "/entities", admin, type="AirQualityObserved", georel="near;maxDistance==850",
                geometry="Point", coordinates=point)
    assert ids_of(tight) == [aq("aq-1"), aq("aq-5")]
    far = get(client, "/entities", admin, type="AirQualityObserved", georel="near;minDistance==2000",
              geometry="Point", coordinates=point)
    assert ids_of(far) == [aq("aq-3")]  # 2.67 km
    box = "[[[117.865,36.795],[117.885,36.795],[117.885,36.803],[117.865,36.803],[117.865,36.795]]]"
    within = get(client, "/entities", admin, type="AirQualityObserved", georel="within", geometry="Polygon",
                 coordinates=box)
    assert ids_of(within) == [aq("aq-1"), aq("aq-2")]
    intersects = get(client, "/entities", admin, georel="intersects", geometry="Polygon", coordinates=box)
    assert ids_of(intersects) == [aq("aq-1"), aq("aq-2"), "urn:ngsi-ld:ParkingSpot:pk-1",
                                  "urn:ngsi-ld:ParkingSpot:pk-2", "urn:ngsi-ld:Device:wl-1"]  # wl-1 on a corner
    combined = get(client, "/entities", admin, georel="within", geometry="Polygon", coordinates=box, q="pm25>50")
    assert ids_of(combined) == [aq("aq-1")]


# --- who sees what ----------------------------------------------------------------------------------


def test_department_staff_see_only_their_departments_devices(client, world) -> None:  # noqa: ANN001
    ecology = token_for(client, "ecology")
    assert ids_of(get(client, "/entities", ecology, type="AirQualityObserved", q="pm25>75")) == [
        aq("aq-1"), aq("aq-3")]
    assert_problem(get(client, "/entities/" + aq("aq-4"), ecology), 404, "ResourceNotFound")
    assert_problem(get(client, "/temporal/entities/" + aq("aq-4"), ecology), 404, "ResourceNotFound")
    leader = token_for(client, "leader")
    assert len(ids_of(get(client, "/entities", leader, type="AirQualityObserved"))) == 5


def test_authentication_and_permission_errors_are_problem_details(client, world) -> None:  # noqa: ANN001
    response = client.get(BASE + "/entities", params={"type": "AirQualityObserved"})
    assert_problem(response, 401, "Unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    bad = client.get(BASE + "/entities", params={"type": "Device"}, headers={"Authorization": "Bearer nope"})
    assert_problem(bad, 401, "Unauthorized")
    citizen = token_for(client, "citizen")
    assert_problem(get(client, "/entities", citizen, type="Device"), 403, "Forbidden", "iot:read")


# --- content negotiation and @context ------------------------------------------------------------------


def test_ld_json_answers_carry_the_context_in_the_body(client, world, admin) -> None:  # noqa: ANN001
    headers = {**admin, "Accept": "application/ld+json"}
    response = get(client, "/entities/" + aq("aq-1"), headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/ld+json"
    assert response.json()["@context"] == "http://testserver/ngsi-ld/v1/context.jsonld"
    assert "link" not in response.headers
    listing = get(client, "/entities", headers, type="ParkingSpot").json()
    assert all(e["@context"] == "http://testserver/ngsi-ld/v1/context.jsonld" for e in listing)
    plain = get(client, "/entities/" + aq("aq-1"), {**admin, "Accept": "application/json"})
    assert "@context" not in plain.json() and plain.headers["content-type"] == "application/json"
    assert_problem(get(client, "/entities/" + aq("aq-1"), {**admin, "Accept": "text/html"}), 406, "NotAcceptable")


def test_the_context_is_served_locally_and_names_every_attribute(client) -> None:  # noqa: ANN001
    response = client.get(BASE + "/context.jsonld")  # public: JSON-LD processors fetch it without credentials
    assert response.status_code == 200 and response.headers["content-type"] == "application/ld+json"
    doc = response.json()
    assert doc["@context"][-1] == ngsi.CORE_CONTEXT  # named, never fetched
    terms = ngsi.context_terms()
    from citybrain.iot.thingmodel import load_products

    names = {a.name for m in ngsi.type_maps(load_products()).values() for a in m.attrs}
    assert sorted(names - set(terms)) == []
    assert sorted((set(ngsi.ALL_TYPES) | ngsi.DERIVED) - {"location"} - set(terms)) == []


def test_link_header_with_a_context_we_do_not_hold_is_refused(client, world, admin) -> None:  # noqa: ANN001
    ours = {**admin, "Link": '<http://testserver/ngsi-ld/v1/context.jsonld>; '
                             'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'}
    assert ids_of(get(client, "/entities", ours, type="ParkingSpot")) == [
        "urn:ngsi-ld:ParkingSpot:pk-1", "urn:ngsi-ld:ParkingSpot:pk-2"]
    other = {**admin, "Link": '<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'}
    assert_problem(get(client, "/entities", other, type="ParkingSpot"), 503, "LdContextNotAvailable", "never fetched")


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "words"), [
    ({}, "at least one of"),
    ({"type": "Device", "q": "pm25>>3"}, "q:"),
    ({"type": "Device", "q": "pm25 ?? 3"}, "unknown operator"),
    ({"type": "Device", "q": "status==free"}, "must be quoted"),
    ({"type": "Device", "q": "(pm25>3"}, "expected ')'"),
    ({"type": "Device", "q": "pm25>3)"}, "unexpected text"),
    ({"type": "Device", "q": "pm25>true"}, "needs a number"),
    ({"type": "Device", "q": "pm25>1..3"}, "only allowed after == or !="),
    ({"type": "Device", "q": 'a=="x'}, "unterminated string"),
    ({"type": "Device", "idPattern": "(a+)+$"}, "nested repetition"),
    ({"type": "Device", "idPattern": "[unclosed"}, "invalid regular expression"),
    ({"type": "Device", "limit": "0"}, "limit"),
    ({"type": "Device", "limit": "5000"}, "at most 1000"),
    ({"type": "Device", "limit": "abc"}, "limit"),
    ({"type": "Device", "offset": "-1"}, "offset"),
    ({"type": "Device", "count": "yes"}, "count"),
    ({"type": "Device", "options": "sideways"}, "unknown options"),
    ({"georel": "around", "geometry": "Point", "coordinates": "[117.8,36.8]"}, "georel 'around'"),
    ({"georel": "near", "geometry": "Point", "coordinates": "[117.8,36.8]"}, "maxDistance"),
    ({"georel": "near;maxDistance==far", "geometry": "Point", "coordinates": "[117.8,36.8]"}, "number of metres"),
    ({"georel": "near;maxDistance==-5", "geometry": "Point", "coordinates": "[117.8,36.8]"}, "non-negative"),
    ({"georel": "within", "geometry": "Point"}, "all of georel, geometry and coordinates"),
    ({"georel": "within", "geometry": "Circle", "coordinates": "[1,2]"}, "geometry 'Circle'"),
    ({"georel": "within", "geometry": "Point", "coordinates": "[200,36.8]"}, "not a WGS-84"),
    ({"georel": "within", "geometry": "Point", "coordinates": "117.8,36.8"}, "JSON array"),
    ({"georel": "within", "geometry": "Polygon", "coordinates": "[[[117.8,36.8],[117.9,36.8],[117.9,36.9]]]"},
     "at least 4 positions"),
    ({"georel": "within", "geometry": "Polygon",
      "coordinates": "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]"}, "not valid"),
    ({"georel": "within", "geometry": "Polygon", "coordinates": "[117.8,36.8]"}, "nested"),
    ({"georel": "within", "geometry": "Point", "coordinates": "[1,2]", "geoproperty": "observationSpace"},
     "geoproperty"),
])
def test_bad_query_parameters_are_bad_request_data(client, world, admin, params, words) -> None:  # noqa: ANN001
    assert_problem(client.get(BASE + "/entities", params=params, headers=admin), 400, "BadRequestData", words)


def test_unknown_or_malformed_entity_ids(client, world, admin) -> None:  # noqa: ANN001
    assert_problem(get(client, "/entities/" + aq("nope"), admin), 404, "ResourceNotFound", "nope")
    assert_problem(get(client, "/entities/urn:ngsi-ld:ParkingSpot:aq-1", admin), 404, "ResourceNotFound")
    assert_problem(get(client, "/entities/not-a-uri", admin), 400, "BadRequestData", "not a URI")
    assert get(client, "/entities/" + quote(aq("aq-1"), safe=""), admin).json()["id"] == aq("aq-1")


# --- temporal ------------------------------------------------------------------------------------------


def _series(response, name: str = "pm25") -> list[tuple[float, str]]:  # noqa: ANN001
    assert response.status_code == 200, response.text
    return [(i["value"], i["observedAt"]) for i in response.json().get(name, [])]


def test_temporal_evolution_from_the_telemetry(client, world, admin) -> None:  # noqa: ANN001
    path = "/temporal/entities/" + aq("aq-1")
    every = _series(get(client, path, admin))
    assert [v for v, _ in every] == [50.0, 55.0, 60.0, 70.0, 75.0, 80.0]  # the reading at i=3 had no pm25
    t = [T0 - HOUR + i * 600_000 for i in range(7)]
    before = _series(get(client, path, admin, timerel="before", timeAt=ngsi.iso_ms(t[2])))
    assert [v for v, _ in before] == [50.0, 55.0]
    after = _series(get(client, path, admin, timerel="after", timeAt=ngsi.iso_ms(t[4])))
    assert [v for v, _ in after] == [75.0, 80.0]
    between = _series(get(client, path, admin, timerel="between", timeAt=ngsi.iso_ms(t[1]),
                          endTimeAt=ngsi.iso_ms(t[5])))
    assert [v for v, _ in between] == [55.0, 60.0, 70.0]
    last = get(client, path, admin, lastN="2", attrs="pm25,relativeHumidity")
    assert _series(last) == [(75.0, ngsi.iso_ms(t[5])), (80.0, ngsi.iso_ms(t[6]))]
    assert _series(last, "relativeHumidity") == [(0.55, ngsi.iso_ms(t[6]))]
    assert set(last.json()) == {"id", "type", "pm25", "relativeHumidity"}
    assert last.json()["pm25"][0] == {"type": "Property", "value": 75.0, "observedAt": ngsi.iso_ms(t[5]),
                                      "unitCode": "GQ"}
    simple = get(client, path, admin, options="temporalValues", attrs="pm10", lastN="1").json()
    assert simple["pm10"] == {"type": "Property", "values": [[120.0, ngsi.iso_ms(t[6])]]}


@pytest.mark.parametrize(("params", "words"), [
    ({"timerel": "before"}, "needs timeAt"),
    ({"timerel": "during", "timeAt": "2026-11-26T00:00:00Z"}, "timerel 'during'"),
    ({"timerel": "between", "timeAt": "2026-11-26T00:00:00Z"}, "needs endTimeAt"),
    ({"timerel": "between", "timeAt": "2026-11-26T00:00:00Z", "endTimeAt": "2026-11-25T00:00:00Z"}, "later"),
    ({"timerel": "after", "timeAt": "2026-11-26T00:00:00Z", "endTimeAt": "2026-11-27T00:00:00Z"},
     "only used with timerel=between"),
    ({"timeAt": "2026-11-26T00:00:00Z"}, "need timerel"),
    ({"timerel": "after", "timeAt": "yesterday"}, "not an ISO 8601"),
    ({"timerel": "after", "timeAt": "2026-11-26T00:00:00"}, "time zone"),
    ({"lastN": "0"}, "lastN"),
    ({"lastN": "many"}, "lastN"),
    ({"timeproperty": "modifiedAt"}, "timeproperty"),
    ({"options": "aggregatedValues"}, "unknown options"),
])
def test_bad_temporal_parameters(client, world, admin, params, words) -> None:  # noqa: ANN001
    response = client.get(BASE + "/temporal/entities/" + aq("aq-1"), params=params, headers=admin)
    assert_problem(response, 400, "BadRequestData", words)


# --- upsert ---------------------------------------------------------------------------------------------


def _upsert(client, headers, body, content_type: str = "application/json"):  # noqa: ANN001, ANN201
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(BASE + "/entityOperations/upsert", content=data,
                       headers={**headers, "Content-Type": content_type})


def _telemetry_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Telemetry))


def test_upsert_becomes_one_reading_per_entity(client, world, admin, db) -> None:  # noqa: ANN001
    observed = ngsi.iso_ms(T0 + HOUR)
    body = [
        {"id": aq("aq-2"), "type": "AirQualityObserved",
         "pm25": {"type": "Property", "value": 99.0, "observedAt": observed, "unitCode": "GQ"},
         "relativeHumidity": {"type": "Property", "value": 0.62, "observedAt": observed},
         "airQualityIndex": {"type": "Property", "value": 1}},  # computed: ignored
        {"id": "urn:ngsi-ld:ParkingSpot:pk-1", "type": "ParkingSpot", "status": "free"},
    ]
    response = _upsert(client, admin, body)
    assert response.status_code == 204, response.text
    row = db.get(Telemetry, (world["aq-2"], T0 + HOUR))
    assert row is not None and row.data == {"pm25": 99.0, "humidity": 62.0}
    entity = get(client, "/entities/" + aq("aq-2"), admin, options="keyValues").json()
    assert entity["pm25"] == 99.0 and entity["relativeHumidity"] == 0.62 and entity["dateObserved"] == observed
    assert get(client, "/entities/urn:ngsi-ld:ParkingSpot:pk-1", admin, options="keyValues").json()["status"] == "free"
    assert ids_of(get(client, "/entities", admin, type="AirQualityObserved", q="pm25>95")) == [aq("aq-2"), aq("aq-3")]


def test_upsert_with_ld_json_context_in_the_body(client, world, admin, db) -> None:  # noqa: ANN001
    body = [{"id": aq("aq-1"), "type": "AirQualityObserved", "pm25": 33.0,
             "@context": "http://testserver/ngsi-ld/v1/context.jsonld"}]
    assert _upsert(client, admin, body, "application/ld+json").status_code == 204
    assert get(client, "/entities/" + aq("aq-1"), admin, options="keyValues").json()["pm25"] == 33.0


def test_upsert_reports_each_failed_entity(client, world, admin, db) -> None:  # noqa: ANN001
    before = _telemetry_count(db)
    body = [
        {"id": aq("aq-3"), "type": "AirQualityObserved", "pm25": 20.0},  # fine
        {"id": aq("ghost"), "type": "AirQualityObserved", "pm25": 20.0},
        {"id": "urn:ngsi-ld:ParkingSpot:aq-1", "type": "ParkingSpot", "status": "free"},
        {"id": aq("aq-1"), "type": "ParkingSpot", "pm25": 1.0},
        {"id": aq("aq-1"), "type": "AirQualityObserved", "colour": "blue"},
        {"id": aq("aq-1"), "type": "AirQualityObserved", "pm25": 5000.0},  # refused by the thing model
        {"id": "urn:ngsi-ld:ParkingSpot:pk-2", "type": "ParkingSpot", "status": "maybe"},
        {"id": aq("aq-1"), "type": "AirQualityObserved", "pm25": {"type": "Property", "value": 1.0, "unitCode": "GP"}},
        "not an entity",
    ]
    response = _upsert(client, admin, body)
    assert response.status_code == 207, response.text
    result = response.json()
    assert result["success"] == [aq("aq-3")]
    errors = [(e["entityId"], e["error"]["type"].rsplit("/", 1)[1], e["error"]["detail"]) for e in result["errors"]]
    assert [(eid, kind) for eid, kind, _ in errors] == [
        (aq("ghost"), "ResourceNotFound"), ("urn:ngsi-ld:ParkingSpot:aq-1", "BadRequestData"),
        (aq("aq-1"), "BadRequestData"), (aq("aq-1"), "BadRequestData"),
        ("urn:ngsi-ld:ParkingSpot:pk-2", "BadRequestData"),
        (aq("aq-1"), "BadRequestData"), (None, "BadRequestData"), (aq("aq-1"), "BadRequestData")]
    details = [d for _, _, d in errors]
    assert "ghost" in details[0] and "maps to AirQualityObserved" in details[1]
    assert "does not match the id's type" in details[2] and "'colour'" in details[3]
    assert "occupied" in details[4] and "unitCode" in details[5] and "JSON object" in details[6]
    assert details[7].startswith("out_of_range")  # refused by the thing model, inside ingestion
    assert _telemetry_count(db) == before + 1
    assert get(client, "/entities/" + aq("aq-1"), admin, options="keyValues").json()["pm25"] == 80.0


@pytest.mark.parametrize(("content_type", "body", "status", "kind", "words"), [
    ("text/plain", b'[{"id": "x"}]', 415, "UnsupportedMediaType", "Content-Type"),
    ("application/x-www-form-urlencoded", b"id=x", 415, "UnsupportedMediaType", "Content-Type"),
    ("application/json", b"[{not json", 400, "InvalidRequest", "not valid JSON"),
    ("application/json", b'{"id": "x"}', 400, "BadRequestData", "JSON array"),
    ("application/json", b"[]", 400, "BadRequestData", "non-empty"),
    ("application/json", json.dumps([{"id": "urn:ngsi-ld:AirQualityObserved:aq-1", "type": "AirQualityObserved",
                                      "pm25": 1, "@context": "x"}]).encode(), 400, "BadRequestData", "Link header"),
    ("application/ld+json", json.dumps([{"id": "urn:ngsi-ld:AirQualityObserved:aq-1", "type": "AirQualityObserved",
                                         "pm25": 1}]).encode(), 400, "BadRequestData", "carries an @context"),
    ("application/ld+json", json.dumps([{"id": "urn:ngsi-ld:AirQualityObserved:aq-1", "type": "AirQualityObserved",
                                         "pm25": 1, "@context": "https://example.org/c.jsonld"}]).encode(),
     503, "LdContextNotAvailable", "never fetched"),
])
def test_malformed_upserts_change_nothing(client, world, admin, db, content_type, body, status, kind,  # noqa: ANN001
                                          words) -> None:
    before = _telemetry_count(db)
    assert_problem(_upsert(client, admin, body, content_type), status, kind, words)
    assert _telemetry_count(db) == before


def test_upsert_needs_iot_admin(client, world, db) -> None:  # noqa: ANN001
    before = _telemetry_count(db)
    body = [{"id": aq("aq-1"), "type": "AirQualityObserved", "pm25": 1.0}]
    assert_problem(_upsert(client, token_for(client, "ecology"), body), 403, "Forbidden", "iot:admin")
    assert_problem(_upsert(client, {}, body), 401, "Unauthorized")
    assert _telemetry_count(db) == before
