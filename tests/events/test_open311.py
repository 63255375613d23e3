"""Open311 GeoReport v2 over HTTP: what an unchanged Open311 client sees, in JSON and XML."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import func, select

from citybrain.core import clock
from citybrain.events import catalog
from citybrain.events import service as events_service
from citybrain.events.models import Event
from citybrain.org import auth
from citybrain.org import service as org_service

BASE = "/open311/v2"
INSIDE = {"lat": "36.797", "long": "117.856"}  # 丝绸路街道, WGS-84
OUTSIDE = {"lat": "39.9087", "long": "116.3975"}  # Beijing


def _key(db, username: str, admin_actor) -> str:
    user = org_service.get_user_by_username(db, username=username)
    token, _ = auth.issue_token(db, user=user, scopes=None, days=1, actor=admin_actor, name="open311 test")
    return token


@pytest.fixture(autouse=True)
def _catalog(db, admin_actor) -> None:
    catalog.sync_catalog(db, actor=admin_actor)  # adds only what is missing


@pytest.fixture
def api_key(db, admin_actor) -> str:
    return _key(db, "citizen", admin_actor)


@pytest.fixture
def code(db) -> str:
    return sorted(c.code for c in catalog.list_categories(db, public_only=True) if c.active)[0]


def _event_count(db) -> int:
    return db.scalar(select(func.count()).select_from(Event))


def _post(client, fmt="json", **form):
    return client.post(f"{BASE}/requests.{fmt}", data=form)


def _json_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, list) and body[0]["code"] == status
    return body[0]["description"]


def _xml_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "errors" and root[0].tag == "error"
    assert root.findtext("error/code") == str(status)
    return root.findtext("error/description")


# --- discovery and services ----------------------------------------------------------------


def test_discovery_in_both_formats_points_at_this_endpoint(client):
    data = client.get(f"{BASE}/discovery.json").json()
    (endpoint,) = data["endpoints"]
    assert endpoint["url"] == "http://testserver/open311/v2"
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["formats"] == ["text/xml", "application/json"] and endpoint["type"] == "production"
    assert data["changeset"].endswith("+08:00") and "token create" in data["key_service"]

    r = client.get(f"{BASE}/discovery.xml")
    assert r.headers["content-type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(r.content)
    assert root.tag == "discovery"
    assert root.findtext("endpoints/endpoint/url") == "http://testserver/open311/v2"


def test_services_lists_public_categories_with_string_codes(client, db):
    services = client.get(f"{BASE}/services.json").json()
    public = {c.code: c for c in catalog.list_categories(db, public_only=True) if c.active}
    assert {s["service_code"] for s in services} == set(public)
    first = services[0]
    assert isinstance(first["service_code"], str) and first["type"] == "realtime" and first["metadata"] is False
    assert first["group"] == public[first["service_code"]].major_name
    assert first["service_name"] == public[first["service_code"]].name


def test_services_xml_uses_the_spec_element_names(client):
    root = ET.fromstring(client.get(f"{BASE}/services.xml").content)
    assert root.tag == "services" and {c.tag for c in root} == {"service"}
    svc = root[0]
    assert [c.tag for c in svc] == ["service_code", "service_name", "description", "metadata", "type",
                                    "keywords", "group"]


def test_service_definition_of_a_known_code_has_no_attributes(client, code):
    assert client.get(f"{BASE}/services/{code}.json").json() == {"service_code": code, "attributes": []}
    root = ET.fromstring(client.get(f"{BASE}/services/{code}.xml").content)
    assert root.tag == "service_definition" and root.findtext("service_code") == code


def test_service_definition_of_an_unknown_code_is_404_in_both_formats(client):
    assert "not found" in _json_error(client.get(f"{BASE}/services/NOPE99.json"), 404)
    assert "not found" in _xml_error(client.get(f"{BASE}/services/NOPE99.xml"), 404)


def test_an_unknown_format_is_400_with_an_xml_error_array(client):
    assert "use .json or .xml" in _xml_error(client.get(f"{BASE}/services.html"), 400)


def test_jurisdiction_id_must_be_this_district_when_given(client):
    assert client.get(f"{BASE}/services.json", params={"jurisdiction_id": "370306"}).status_code == 200
    assert client.get(f"{BASE}/services.json", params={"jurisdiction_id": ""}).status_code == 200
    assert "370306" in _json_error(client.get(f"{BASE}/services.json", params={"jurisdiction_id": "x.gov"}), 404)


# --- POST requests: the happy path ---------------------------------------------------------


def test_post_then_read_back_in_json(client, db, api_key, code):
    r = _post(client, api_key=api_key, service_code=code, description="路灯不亮", first_name="三",
              last_name="张", phone="13812345678", email="z@example.cn", **INSIDE)
    assert r.status_code == 200, r.text
    (created,) = r.json()
    request_id = created["service_request_id"]
    assert set(created) == {"service_request_id", "service_notice", "account_id"} and "token" not in created
    assert request_id in created["service_notice"] and created["account_id"] is None

    event = events_service.get_by_tracking(db, tracking_no=request_id)
    assert event.channel == "open311" and event.reporter_name == "张三" and event.township_code

    (row,) = client.get(f"{BASE}/requests/{request_id}.json").json()
    assert row["service_request_id"] == request_id and row["service_code"] == code
    assert row["status"] == "open" and row["description"] == "路灯不亮"
    assert row["lat"] == pytest.approx(36.797) and row["long"] == pytest.approx(117.856)
    assert row["requested_datetime"].endswith("+08:00")
    published = client.get(f"{BASE}/requests/{request_id}.json").text
    assert "13812345678" not in published and "z@example.cn" not in published and "张三" not in published


def test_post_then_read_back_in_xml(client, api_key, code):
    r = _post(client, "xml", api_key=api_key, service_code=code, description="井盖缺失", **INSIDE)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(r.content)
    assert root.tag == "service_requests" and root[0].tag == "request"
    request_id = root.findtext("request/service_request_id")
    assert request_id and root.find("request/token") is None

    got = ET.fromstring(client.get(f"{BASE}/requests/{request_id}.xml").content)
    assert got.tag == "service_requests"
    (req,) = got.findall("request")
    assert req.findtext("service_request_id") == request_id and req.findtext("status") == "open"
    assert req.findtext("description") == "井盖缺失" and req.findtext("requested_datetime").endswith("+08:00")
    assert {"status_notes", "agency_responsible", "expected_datetime", "address_id", "zipcode", "lat", "long",
            "media_url"} <= {c.tag for c in req}


def test_an_address_without_coordinates_is_taken_for_manual_location(client, db, api_key, code):
    r = _post(client, api_key=api_key, service_code=code, description="占道经营",
              address_string="丝绸路街道 丝绸路 1 号")
    assert r.status_code == 200, r.text
    event = events_service.get_by_tracking(db, tracking_no=r.json()[0]["service_request_id"])
    assert event.location_state == "manual" and event.address.startswith("丝绸路街道")


def test_description_is_optional_and_empty_optional_fields_behave_as_absent(client, db, api_key, code):
    r = _post(client, api_key=api_key, service_code=code, description="", email="", phone="", first_name="",
              address_id="", address_string="", media_url="", jurisdiction_id="", **INSIDE)
    assert r.status_code == 200, r.text
    event = events_service.get_by_tracking(db, tracking_no=r.json()[0]["service_request_id"])
    assert event.description == catalog.get_category(db, code=code).name


# --- POST requests: refusals ---------------------------------------------------------------


def test_missing_or_wrong_api_key_is_403_and_stores_nothing(client, db, code):
    before = _event_count(db)
    assert "api_key is required" in _json_error(_post(client, service_code=code, description="x", **INSIDE), 403)
    assert "api_key is required" in _xml_error(_post(client, "xml", service_code=code, description="x",
                                                     **INSIDE), 403)
    assert "invalid api_key" in _json_error(_post(client, api_key="cbt_nope_nope", service_code=code,
                                                  description="x", **INSIDE), 403)
    assert "invalid api_key" in _xml_error(_post(client, "xml", api_key="not-a-token", service_code=code,
                                                 description="x", **INSIDE), 403)
    assert _event_count(db) == before


def test_an_api_key_without_events_report_is_403(client, db, admin_actor, code):
    leader_key = _key(db, "leader", admin_actor)  # leaders read and evaluate; they do not report
    reason = _json_error(_post(client, api_key=leader_key, service_code=code, description="x", **INSIDE), 403)
    assert "events:report" in reason


def test_a_revoked_api_key_is_403(client, db, admin_actor, code):
    user = org_service.get_user_by_username(db, username="citizen")
    token, row = auth.issue_token(db, user=user, scopes=None, days=1, actor=admin_actor)
    auth.revoke_token(db, token_id=row.id, actor=admin_actor)
    assert "revoked" in _json_error(_post(client, api_key=token, service_code=code, description="x", **INSIDE), 403)


@pytest.mark.parametrize(("form", "reason"), [
    ({"service_code": "NOPE99"}, "unknown service_code"),
    ({}, "service_code is required"),
])
def test_a_missing_or_unknown_service_code_is_400(client, db, api_key, form, reason):
    before = _event_count(db)
    assert reason in _json_error(_post(client, api_key=api_key, description="x", **form, **INSIDE), 400)
    assert _event_count(db) == before


@pytest.mark.parametrize(("location", "reason"), [
    ({}, "a location is required"),
    ({"lat": "36.797"}, "lat and long must be sent together"),
    ({"address_id": "A-17"}, "address_id is not supported"),
    ({"lat": "north", "long": "117.8"}, "lat must be a decimal number"),
    ({"lat": "136.8", "long": "117.8"}, "not a valid WGS-84 coordinate"),
    ({"lat": "nan", "long": "117.8"}, "not a valid WGS-84 coordinate"),
])
def test_a_missing_or_invalid_location_is_400(client, db, api_key, code, location, reason):
    before = _event_count(db)
    assert reason in _json_error(_post(client, api_key=api_key, service_code=code, description="x", **location),
                                 400)
    assert _event_count(db) == before


def test_a_point_outside_the_district_is_400_with_the_reason_in_both_formats(client, db, api_key, code):
    before = _event_count(db)
    assert "outside the district" in _json_error(
        _post(client, api_key=api_key, service_code=code, description="x", **OUTSIDE), 400)
    assert "outside the district" in _xml_error(
        _post(client, "xml", api_key=api_key, service_code=code, description="x", **OUTSIDE), 400)
    assert _event_count(db) == before


@pytest.mark.parametrize(("description", "reason"), [
    ("路" * 4001, "at most 4000 characters"),
    ("<b>垃圾</b> 很多", "HTML is not accepted"),
])
def test_an_overlong_or_html_description_is_400(client, db, api_key, code, description, reason):
    before = _event_count(db)
    text = _json_error(_post(client, api_key=api_key, service_code=code, description=description, **INSIDE), 400)
    assert text.startswith("description:") and reason in text
    assert _event_count(db) == before


def test_a_description_of_exactly_4000_characters_is_accepted(client, api_key, code):
    assert _post(client, api_key=api_key, service_code=code, description="路" * 4000, **INSIDE).status_code == 200


# --- GET requests --------------------------------------------------------------------------


@pytest.fixture
def posted(client, api_key, code) -> str:
    r = _post(client, api_key=api_key, service_code=code, description="垃圾堆放", **INSIDE)
    assert r.status_code == 200, r.text
    return r.json()[0]["service_request_id"]


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["service_request_id"] for r in response.json()]


def test_an_unknown_request_id_is_404_in_both_formats(client):
    assert "not found" in _json_error(client.get(f"{BASE}/requests/ZC19990101-000001.json"), 404)
    assert "not found" in _xml_error(client.get(f"{BASE}/requests/ZC19990101-000001.xml"), 404)


def test_list_filters_by_code_and_status_and_window(client, posted, code):
    assert posted in _ids(client.get(f"{BASE}/requests.json"))
    assert posted in _ids(client.get(f"{BASE}/requests.json", params={"service_code": code, "status": "open"}))
    assert posted not in _ids(client.get(f"{BASE}/requests.json", params={"status": "closed"}))
    assert posted not in _ids(client.get(f"{BASE}/requests.json", params={"service_code": "NOPE99"}))
    earlier = (clock.now() - timedelta(days=30)).date().isoformat()
    assert posted not in _ids(client.get(f"{BASE}/requests.json", params={"end_date": earlier}))
    assert posted in _ids(client.get(f"{BASE}/requests.json", params={"start_date": earlier}))


def test_empty_optional_parameters_behave_as_absent(client, posted):
    plain = _ids(client.get(f"{BASE}/requests.json"))
    empty = _ids(client.get(f"{BASE}/requests.json", params={
        "service_request_id": "", "service_code": "", "start_date": "", "end_date": "", "status": "",
        "jurisdiction_id": ""}))
    assert posted in plain and empty == plain


def test_service_request_id_list_overrides_the_other_filters(client, posted):
    ids = _ids(client.get(f"{BASE}/requests.json", params={
        "service_request_id": f"{posted}, ZC19990101-000001", "status": "closed", "service_code": "NOPE99"}))
    assert ids == [posted]


def test_a_window_over_90_days_is_400(client):
    reason = _json_error(client.get(f"{BASE}/requests.json", params={
        "start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-06-01T00:00:00+08:00"}), 400)
    assert "90 days" in reason
    assert "90 days" in _xml_error(client.get(f"{BASE}/requests.xml", params={
        "start_date": "2026-01-01", "end_date": "2026-06-01"}), 400)


@pytest.mark.parametrize(("params", "reason"), [
    ({"start_date": "yesterday"}, "ISO 8601"),
    ({"start_date": "2026-06-01", "end_date": "2026-05-01"}, "before start_date"),
    ({"status": "pending"}, "open or closed"),
])
def test_bad_list_parameters_are_400(client, params, reason):
    assert reason in _json_error(client.get(f"{BASE}/requests.json", params=params), 400)


def test_requests_xml_lists_request_elements(client, posted):
    root = ET.fromstring(client.get(f"{BASE}/requests.xml").content)
    assert root.tag == "service_requests" and {c.tag for c in root} == {"request"}
    assert posted in [r.findtext("service_request_id") for r in root]


def test_a_closed_event_reads_as_closed_with_its_last_note(client, db, posted, admin_actor):
    event = events_service.get_by_tracking(db, tracking_no=posted)
    events_service.transition(db, event_id=event.id, action="reject", actor=admin_actor, reason="非本区管辖事项")
    (row,) = client.get(f"{BASE}/requests/{posted}.json").json()
    assert row["status"] == "closed" and row["status_notes"] == "非本区管辖事项"
    assert posted in _ids(client.get(f"{BASE}/requests.json", params={"status": "closed"}))


# --- tokens --------------------------------------------------------------------------------


def test_a_token_lookup_is_404_because_ids_are_issued_at_once(client):
    assert "never issues tokens" in _json_error(client.get(f"{BASE}/tokens/abc123.json"), 404)
    assert "never issues tokens" in _xml_error(client.get(f"{BASE}/tokens/abc123.xml"), 404)


# --- docs ----------------------------------------------------------------------------------


def test_every_open311_route_is_documented(app):
    text = (Path(__file__).resolve().parents[2] / "docs" / "open311.md").read_text(encoding="utf-8")
    for route in app.routes:
        path = getattr(route, "path", "")
        if path.startswith("/open311/"):
            for method in route.methods - {"HEAD"}:
                assert f"`{method} {path.replace('{fmt_value}', '{json,xml}')}`" in text
