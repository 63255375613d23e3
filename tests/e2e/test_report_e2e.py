"""In real headless Chromium on a phone-size screen: a citizen without an account reports a
problem by tapping the map, reads the tracking number and follows the report."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
INSIDE = (117.856, 36.797)  # 丝绸路街道, WGS-84


def _open_report_page(page, server):  # noqa: ANN001, ANN202
    page.set_viewport_size(PHONE)
    page.goto(server.base_url + "/login")
    page.click("[data-testid=report-link]")
    page.wait_for_url(server.base_url + "/report")
    page.wait_for_function("document.getElementById('report-map').dataset.state === 'ready'", timeout=20000)


def test_citizen_reports_from_a_phone_by_tapping_the_map_and_follows_it(page, demo_server):
    _open_report_page(page, demo_server)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    page.select_option("#category_code", index=1)
    page.fill("#description", "小区门口的路灯不亮了")
    box = page.locator("#report-map").bounding_box()
    x, y = page.evaluate(f"window.citybrainReport.chart.convertToPixel({{geoIndex: 0}}, {list(INSIDE)})")
    page.mouse.click(box["x"] + x, box["y"] + y)
    lon, lat = (float(v) for v in page.locator("#report-map").get_attribute("data-point").split(","))
    assert abs(lon - INSIDE[0]) < 0.01 and abs(lat - INSIDE[1]) < 0.01
    assert page.input_value("#lon") and page.input_value("#lat")
    page.click("#report-form button[type=submit]")
    number = page.locator("[data-testid=tracking-no]").inner_text(timeout=20000).strip()
    assert re.fullmatch(r"ZC\d{8}-\d{6}", number)

    page.click(f"a[href='/track/{number}']")
    page.wait_for_url(f"{demo_server.base_url}/track/{number}")
    status = page.locator("[data-testid=status]")
    assert status.get_attribute("data-status") == "reported"
    assert status.inner_text() == "已上报，待受理"
    assert "丝绸路街道" in page.content()
    assert page.outside_requests == []


def test_the_phones_location_fills_the_point(page, demo_server):
    page.context.grant_permissions(["geolocation"], origin=demo_server.base_url)
    page.context.set_geolocation({"longitude": INSIDE[0], "latitude": INSIDE[1]})
    _open_report_page(page, demo_server)
    page.click("#use-gps")
    page.wait_for_function("document.getElementById('report-map').dataset.point === '117.856,36.797'",
                           timeout=10000)


def test_a_point_outside_the_district_is_refused_in_chinese(page, demo_server):
    _open_report_page(page, demo_server)
    page.select_option("#category_code", index=1)
    page.fill("#description", "测试")
    page.evaluate("window.citybrainReport.setPoint(116.3975, 39.9087)")
    page.click("#report-form button[type=submit]")
    assert "不在周村区范围内" in page.locator("[data-testid=report-errors]").inner_text()
    assert page.locator("[data-testid=tracking-no]").count() == 0
