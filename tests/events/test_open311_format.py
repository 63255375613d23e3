"""Open311 bodies, without a database: element names, dates with +08:00, UTF-8, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest

from citybrain.events import open311_format as fmt

CREATED = datetime(2026, 11, 26, 1, 30, 15, 123456, tzinfo=UTC)


def _request(**overrides):
    values = dict(
        service_request_id="ZC20261126000001", status="open", status_notes="已派遣", service_name="暴露垃圾",
        service_code="E0101", description="路边有垃圾 & 杂物", agency_responsible="区城市管理局",
        service_notice=None, requested_datetime=CREATED, updated_datetime=CREATED, expected_datetime=None,
        address="丝绸路 1 号", lat=36.797, long=117.856,
    )
    values.update(overrides)
    return fmt.request(**values)


def test_timestamps_are_iso_8601_in_plus_eight_hours_to_the_second():
    assert fmt.timestamp(CREATED) == "2026-11-26T09:30:15+08:00"
    assert fmt.timestamp(datetime(2026, 11, 26, 1, 30)) == "2026-11-26T09:30:00+08:00"  # naive = UTC
    assert fmt.timestamp(None) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-26T09:30:00+08:00", datetime(2026, 11, 26, 1, 30, tzinfo=UTC)),
    ("2026-11-26T01:30:00Z", datetime(2026, 11, 26, 1, 30, tzinfo=UTC)),
    ("2026-11-26T09:30:00", datetime(2026, 11, 26, 1, 30, tzinfo=UTC)),  # no zone: local time
    ("2026-11-26", datetime(2026, 11, 25, 16, 0, tzinfo=UTC)),
])
def test_client_dates_parse_with_local_time_as_the_default_zone(text, expected):
    assert fmt.parse_timestamp(text) == expected


def test_an_unparseable_date_names_the_expected_form():
    with pytest.raises(ValueError, match="ISO 8601"):
        fmt.parse_timestamp("26/11/2026")


def test_keywords_become_one_comma_separated_string():
    assert fmt.keywords("垃圾，杂物; 堆放  trash") == "垃圾,杂物,堆放,trash"
    assert fmt.keywords("") == ""


def test_services_json_has_string_codes_and_the_spec_fields():
    body = fmt.render("json", "services", [fmt.service(code="0101", name="暴露垃圾", description="d",
                                                       group="市容环境", keyword_text="垃圾 杂物")])
    assert body.media_type == "application/json; charset=utf-8"
    (svc,) = json.loads(body.content.decode("utf-8"))
    assert svc == {"service_code": "0101", "service_name": "暴露垃圾", "description": "d", "metadata": False,
                   "type": "realtime", "keywords": "垃圾,杂物", "group": "市容环境"}
    assert "暴露垃圾".encode() in body.content  # UTF-8, not \u escapes


def test_services_xml_uses_services_and_service_elements():
    body = fmt.render("xml", "services", [fmt.service(code="E0101", name="暴露垃圾", description="",
                                                      group="市容环境", keyword_text="")])
    assert body.media_type == "text/xml; charset=utf-8"
    assert body.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body.content)
    assert root.tag == "services" and [c.tag for c in root] == ["service"]
    svc = root.find("service")
    assert svc.findtext("service_code") == "E0101" and svc.findtext("metadata") == "false"
    assert svc.findtext("service_name") == "暴露垃圾" and svc.findtext("group") == "市容环境"


def test_discovery_lists_the_endpoint_with_both_formats_in_json_and_xml():
    doc = fmt.discovery(changeset=CREATED, contact="区大数据局", key_service="ask", url="http://x/open311/v2")
    data = json.loads(fmt.render("json", "discovery", doc).content)
    (endpoint,) = data["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["formats"] == ["text/xml", "application/json"] and endpoint["type"] == "production"
    assert data["changeset"] == "2026-11-26T09:30:15+08:00"

    root = ET.fromstring(fmt.render("xml", "discovery", doc).content)
    assert root.tag == "discovery" and root.findtext("contact") == "区大数据局"
    ep = root.find("endpoints/endpoint")
    assert ep.findtext("url") == "http://x/open311/v2"
    assert [f.text for f in ep.findall("formats/format")] == ["text/xml", "application/json"]


def test_service_definition_nests_attributes_and_values():
    attr = {"variable": True, "code": "SIZE", "datatype": "singlevaluelist", "required": False,
            "datatype_description": None, "order": 1, "description": "大小",
            "values": [{"key": "s", "name": "小"}, {"key": "l", "name": "大"}]}
    root = ET.fromstring(fmt.render("xml", "service_definition",
                                    fmt.service_definition(code="E0101", attributes=[attr])).content)
    assert root.tag == "service_definition" and root.findtext("service_code") == "E0101"
    a = root.find("attributes/attribute")
    assert a.findtext("variable") == "true" and a.findtext("required") == "false"
    assert [v.findtext("name") for v in a.findall("values/value")] == ["小", "大"]
    assert json.loads(fmt.render("json", "service_definition", fmt.service_definition(code="X")).content) == {
        "service_code": "X", "attributes": []}


def test_requests_json_has_every_spec_field_and_no_reporter_data():
    (row,) = json.loads(fmt.render("json", "requests", [_request()]).content)
    assert set(row) == {"service_request_id", "status", "status_notes", "service_name", "service_code",
                        "description", "agency_responsible", "service_notice", "requested_datetime",
                        "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
                        "long", "media_url"}
    assert row["requested_datetime"] == "2026-11-26T09:30:15+08:00" and row["expected_datetime"] is None
    assert row["lat"] == 36.797 and row["long"] == 117.856


def test_requests_xml_escapes_text_and_leaves_missing_values_empty():
    body = fmt.render("xml", "requests", [_request(expected_datetime=None, address="")])
    root = ET.fromstring(body.content)
    assert root.tag == "service_requests"
    req = root.find("request")
    assert req.findtext("description") == "路边有垃圾 & 杂物"
    assert req.find("expected_datetime") is not None and req.findtext("expected_datetime") == ""
    assert req.findtext("address") == "" and req.findtext("long") == "117.856"


def test_control_characters_are_dropped_so_the_xml_stays_parseable():
    body = fmt.render("xml", "requests", [_request(description="bad\x01char\x0b")])
    assert ET.fromstring(body.content).findtext("request/description") == "badchar"


def test_post_answer_carries_the_id_and_never_a_token():
    (row,) = json.loads(fmt.render("json", "requests", [fmt.created(service_request_id="ZC1",
                                                                    service_notice="n")]).content)
    assert row == {"service_request_id": "ZC1", "service_notice": "n", "account_id": None}
    req = ET.fromstring(fmt.render("xml", "requests", [fmt.created(service_request_id="ZC1",
                                                                   service_notice=None)]).content)
    assert req.findtext("request/service_request_id") == "ZC1" and req.find("request/token") is None


def test_errors_are_an_array_of_code_and_description_in_both_formats():
    items = fmt.errors([(403, "api_key is missing")])
    assert json.loads(fmt.render("json", "errors", items).content) == [{"code": 403,
                                                                       "description": "api_key is missing"}]
    root = ET.fromstring(fmt.render("xml", "errors", items).content)
    assert root.tag == "errors"
    assert root.findtext("error/code") == "403" and root.findtext("error/description") == "api_key is missing"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError):
        fmt.render("html", "errors", [])  # type: ignore[arg-type]
