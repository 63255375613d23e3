"""In real headless Chromium at 1920×1080: the leader's cockpit shows what the database holds and
follows a new event live, without a reload and without a request to any other host."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

SCREENSHOT = Path(__file__).resolve().parents[2] / "test-results" / "cockpit.png"
OPEN_STATUSES = ("reported", "accepted", "registered", "dispatched", "in_progress", "handled", "verified",
                 "suspended")


def _login(page, server, username: str) -> None:  # noqa: ANN001
    page.goto(server.base_url + "/cockpit")
    assert "/login" in page.url
    page.fill("#username", username)
    page.fill("#password", server.accounts[username])
    with page.expect_navigation(wait_until="domcontentloaded"):
        page.click("button[type=submit].btn-primary")
    assert page.url == server.base_url + "/cockpit", page.content()[:2000]


def _token(server, username: str) -> dict[str, str]:  # noqa: ANN001
    r = httpx.post(server.base_url + "/api/auth/token",
                   data={"username": username, "password": server.accounts[username], "grant_type": "password"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _open_count_via_events_api(server, headers) -> int:  # noqa: ANN001
    """An independent count: the events JSON API, page by page."""
    total, offset = 0, 0
    params = [("status", s) for s in OPEN_STATUSES]
    while True:
        r = httpx.get(server.base_url + "/api/events", headers=headers,
                      params=params + [("limit", 1000), ("offset", offset)])
        assert r.status_code == 200, r.text
        total += len(r.json())
        if len(r.json()) < 1000:
            return total
        offset += 1000


def _shown(page) -> int:  # noqa: ANN001
    return int(page.get_attribute("[data-vital=open]", "data-value"))


def test_leader_sees_the_database_figures_and_a_new_event_arrives_live(page, demo_server):
    page.set_viewport_size({"width": 1920, "height": 1080})
    _login(page, demo_server, "leader")
    page.wait_for_selector("#cockpit[data-state=ready]", timeout=20000)
    page.wait_for_selector("#cp-connection[data-state=live]", timeout=10000)
    leader = _token(demo_server, "leader")

    # The demo keeps reporting events in the background: compare until three reads agree.
    for _ in range(20):
        snap = page.request.get(demo_server.base_url + "/api/cockpit/snapshot").json()
        independent = _open_count_via_events_api(demo_server, leader)
        if _shown(page) == snap["events"]["open"] == independent:
            break
        page.wait_for_timeout(500)
    else:
        pytest.fail(f"screen {_shown(page)}, snapshot {snap['events']['open']}, events API {independent}")
    # The data pool's quality panel: the demo ran every shipped resource's rules once.
    quality = snap["panels"]["data_quality"]
    assert quality["connected"] is True and quality["data"]["value"] is not None
    assert page.locator("[data-panel=data_quality][data-connected=true]").is_visible()
    assert str(quality["data"]["value"]) in page.inner_text("[data-panel=data_quality] .cp-provider-value")
    # The IoT panels show the snapshot's figures (the demo's sensors), and the map its sensor layer.
    drawn = page.evaluate("window.citybrainCockpit.snapshot.panels.device_online.data")
    shown = page.locator("[data-panel=device_online] [data-iot=value]").get_attribute("data-value")
    assert shown == ("" if drawn["value"] is None else str(drawn["value"]))
    assert drawn["total"] == snap["panels"]["device_online"]["data"]["total"] > 0  # registered devices
    assert int(page.get_attribute("#cockpit", "data-sensors") or 0) == len(drawn["points"]) > 0
    assert page.locator("#cp-ticker-list li").count() == min(10, len(snap["ticker"]))

    before = _shown(page)
    updates = page.evaluate("window.citybrainCockpit.updates")
    lon, lat = snap["points"][0][1], snap["points"][0][2]
    admin = _token(demo_server, "admin")
    created = httpx.post(demo_server.base_url + "/api/events", headers=admin, json={
        "channel": "api", "category_code": "E0101", "description": "驾驶舱测试：路边有暴露垃圾",
        "lon": lon, "lat": lat, "reporter_name": "测试人", "reporter_phone": "13800000000"})
    assert created.status_code == 201, created.text
    tracking_no = created.json()["tracking_no"]

    # Live: the open count moves and the new event enters the ticker, with no reload.
    page.wait_for_function(f"Number(document.querySelector('[data-vital=open]').dataset.value) !== {before}",
                           timeout=5000)
    page.wait_for_function(f"document.getElementById('cp-ticker-list').textContent.includes('{tracking_no}')",
                           timeout=5000)
    assert page.evaluate("window.citybrainCockpit.updates") > updates
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert "测试人" not in page.content() and "13800000000" not in page.content()

    # Clicking an event on the map opens its side panel (no personal data; a leader gets the link).
    xy = page.evaluate("(() => { const c = window.citybrainCockpit; const p = c.snapshot.points;"
                       " const r = p[p.length - 1]; return c.map.convertToPixel({geoIndex: 0}, [r[1], r[2]]); })()")
    box = page.locator("#cp-map").bounding_box()
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    page.wait_for_selector("#cp-detail:not([hidden]) [data-testid=event-link]", timeout=5000)
    # A township's drill-down agrees with the snapshot's map points of that township.
    code = snap["ticker"][0]["township_code"]
    page.evaluate(f"window.citybrainCockpit.openTownship('{code}')")
    page.wait_for_selector(f"#cp-detail:not([hidden]) [data-township='{code}']", timeout=5000)
    drill = page.request.get(f"{demo_server.base_url}/api/cockpit/townships/{code}").json()
    assert int(page.text_content("[data-drill=open]")) == drill["open"]

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert page.outside_requests == []


def test_the_briefing_page_is_printable(page, demo_server):
    _login(page, demo_server, "leader")
    page.goto(demo_server.base_url + "/cockpit/briefing")
    page.emulate_media(media="print")
    assert not page.locator(".no-print").first.is_visible()
    assert page.locator("[data-testid=briefing-figures]").is_visible()
    assert page.outside_requests == []
