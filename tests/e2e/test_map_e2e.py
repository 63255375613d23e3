"""In real headless Chromium: log in with the printed admin account and see the Zhoucun map."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def _login(page, server, username: str) -> None:  # noqa: ANN001
    page.goto(server.base_url + "/")
    assert "/login" in page.url
    page.fill("#username", username)
    page.fill("#password", server.accounts[username])
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(server.base_url + "/")


def test_demo_prints_one_account_per_role(demo_server):
    assert set(demo_server.accounts) >= {"admin", "leader", "cityadmin", "gridworker", "citizen"}


def test_admin_logs_in_and_sees_the_map_with_ten_townships(page, demo_server):
    _login(page, demo_server, "admin")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.click("a[href='/map']")
    page.wait_for_function("document.getElementById('map').dataset.townships === '10'", timeout=20000)
    assert page.locator(".approx-note").is_visible()
    # Zoom in on the district seat until the unit grid is drawn.
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(40):
        if page.evaluate("window.citybrainMap.getZoom()") >= 8:
            break
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(100)
    page.wait_for_function("Number(document.getElementById('map').dataset.gridCells || 0) > 0", timeout=20000)
    assert page.outside_requests == []


def test_wrong_password_shows_an_error_and_stays_on_login(page, demo_server):
    page.goto(demo_server.base_url + "/login")
    page.fill("#username", "admin")
    page.fill("#password", "not-the-password-1")
    page.click("button[type=submit].btn-primary")
    assert page.locator(".errors").is_visible()
    assert "/login" in page.url


def test_grid_worker_does_not_see_admin_pages(page, demo_server):
    _login(page, demo_server, "gridworker")
    assert page.locator("a[href='/admin/users']").count() == 0
    assert page.locator("a[href='/map']").count() == 1
    response = page.goto(demo_server.base_url + "/admin/users")
    assert response.status == 403
