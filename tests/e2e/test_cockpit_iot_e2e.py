"""In real headless Chromium at 1920×1080 against `citybrain demo`: a sensor reading that goes in
through the real ingestion path (``POST /api/iot/telemetry`` with the device's HTTP Basic
credentials) and crosses an alarm rule reaches the leader's open cockpit without a reload — the
gauge's level, the active-alarm count, the gauge's state on the map — and the dispatched alarm's
event appears in the open-event count and on the map's event layer. No request leaves the app.

The demo's only waterlogging rule on ``level_cm`` is ``held_for`` (the level must stay above
30 cm for 2 minutes), so the test adds a plain ``threshold`` rule for one demo gauge through the
rules API as admin. The demo's simulator keeps publishing meanwhile (each gauge about once a
minute), so the test looks for its own gauge, alarm and event rather than for totals alone.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from citybrain.demo.iot import demo_secret

pytestmark = pytest.mark.e2e

SCREENSHOT = Path(__file__).resolve().parents[2] / "test-results" / "cockpit-iot-alarm.png"
DEMO_SEED = 2026  # `citybrain demo`'s default; the fixture passes no --seed
GAUGE = "waterlogging_gauge"
LEVEL = 87.5  # cm: far above the 30 cm threshold, and above anything the storm scenario reaches
SCREEN_TIMEOUT_MS = 5000  # the issue asks for 2 s; the margin is for a machine shared with other test runs


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


def _iot_value(page, panel: str) -> str | None:  # noqa: ANN001
    return page.get_attribute(f"[data-panel={panel}] [data-iot=value]", "data-value")


def _drawn_sensor_state(page, key: str) -> str | None:  # noqa: ANN001
    """Which of the map's sensor series (offline / normal / alarm) draws this device now."""
    return page.evaluate("""(key) => {
        const c = window.citybrainCockpit;
        const row = c.snapshot.panels.device_online.data.points.find((r) => r[0] === key);
        if (!row) return null;
        for (const s of c.map.getOption().series) {
            if (String(s.id).startsWith('sensors-') && s.data.some((d) => d[0] === row[1] && d[1] === row[2]))
                return String(s.id).slice(8);
        }
        return null;
    }""", key)


def _post_reading(server, key: str, secret: str, level: float) -> httpx.Response:  # noqa: ANN001
    return httpx.post(server.base_url + "/api/iot/telemetry", auth=(key, secret), timeout=10,
                      json={"ts": int(time.time() * 1000), "values": {"level_cm": level, "battery": 77}})


def _active_alarms(server, admin, key: str) -> list[dict]:  # noqa: ANN001
    r = httpx.get(server.base_url + "/api/iot/alarms", headers=admin,
                  params={"device": key, "status": "active"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_an_ingested_reading_raises_an_alarm_that_the_cockpit_shows_live(page, demo_server):  # noqa: ANN001
    base = demo_server.base_url
    page.set_viewport_size({"width": 1920, "height": 1080})
    _login(page, demo_server, "leader")
    page.wait_for_selector("#cockpit[data-state=ready]", timeout=20000)
    page.wait_for_selector("#cp-connection[data-state=live]", timeout=10000)
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    admin = _token(demo_server, "admin")

    # A demo gauge that is online, under its level and not in alarm — on the screen and in the API.
    snap = page.evaluate("window.citybrainCockpit.snapshot")
    gauges = httpx.get(base + "/api/iot/devices", headers=admin,
                       params={"product": GAUGE, "limit": 100}).json()["items"]
    assert gauges, "the demo registered no waterlogging gauges"
    drawn = {r[0]: r[3] for r in snap["panels"]["device_online"]["data"]["points"]}
    candidates = [g for g in gauges if g["online"] and drawn.get(g["key"]) == "normal"
                  and (g["latest"] or {}).get("data", {}).get("level_cm", 99) < 30
                  and not _active_alarms(demo_server, admin, g["key"])]
    assert candidates, f"no online gauge in normal state: {[(g['key'], drawn.get(g['key'])) for g in gauges]}"
    gauge = candidates[-1]
    key, secret = gauge["key"], demo_secret(DEMO_SEED, gauge["key"])
    assert _drawn_sensor_state(page, key) == "normal"

    # The demo's level rule needs the level held for 2 minutes: add a plain threshold for this gauge.
    rules = httpx.get(base + "/api/iot/rules", headers=admin, params={"product": GAUGE}).json()
    assert not [r for r in rules if r["property"] == "level_cm" and r["kind"] == "threshold" and r["enabled"]]
    assert any(r["property"] == "level_cm" and r["kind"] == "held_for" for r in rules)
    rule = {"id": f"e2e-{key}-over-30", "name": "E2E 积水超过30厘米", "product": GAUGE, "device": key,
            "property": "level_cm", "kind": "threshold", "params": {"op": ">", "value": 30},
            "severity": "critical", "dispatch": True, "category_code": "E0109"}
    r = httpx.post(base + "/api/iot/rules", headers=_token(demo_server, "leader"), json=rule)
    assert r.status_code == 403, r.text  # a leader watches; only iot:admin writes rules
    r = httpx.post(base + "/api/iot/rules", headers=admin, json=rule)
    assert r.status_code == 201, r.text

    alarms_before = int(_iot_value(page, "iot_alarms"))
    open_before = int(page.get_attribute("[data-vital=open]", "data-value"))
    updates_before = page.evaluate("window.citybrainCockpit.updates")

    # Bad credentials: refused, nothing stored, no alarm.
    wrong = _post_reading(demo_server, key, secret + "x", LEVEL)
    assert wrong.status_code == 401 and wrong.json()["code"] == "bad_credentials"
    assert _active_alarms(demo_server, admin, key) == []

    # The reading, through HTTP ingestion. The ingestor re-reads the rules at most every 5 s, so
    # the first readings may be stored without the new rule: repeat until the alarm is raised.
    since = datetime.now(UTC) - timedelta(seconds=5)
    deadline = time.monotonic() + 20
    raised: list[dict] = []
    while not raised:
        assert time.monotonic() < deadline, "the threshold rule raised no alarm within 20 s"
        r = _post_reading(demo_server, key, secret, LEVEL)
        assert r.status_code == 200 and r.json() == {"accepted": 1, "refused": []}, r.text
        posted = time.monotonic()
        raised = _active_alarms(demo_server, admin, key)
        if not raised:
            time.sleep(1)
    [alarm] = raised
    assert alarm["rule_id"] == rule["id"] and alarm["value"] == LEVEL and alarm["severity"] == "critical"

    # Live, without reload: the alarm count, the gauge's level in the waterlogging panel, and the
    # gauge drawn in the map's alarm series (its side panel says so too).
    page.wait_for_function(
        "([key, n]) => { const d = window.citybrainCockpit.snapshot.panels.iot_alarms.data;"
        " return Number(document.querySelector('[data-panel=iot_alarms] [data-iot=value]').dataset.value) >= n"
        " && d.latest.some((a) => a.device === key); }",
        arg=[key, alarms_before + 1], timeout=SCREEN_TIMEOUT_MS)
    seen_after = time.monotonic() - posted
    assert _drawn_sensor_state(page, key) == "alarm"
    waterlogging = page.evaluate("window.citybrainCockpit.snapshot.panels.waterlogging.data")
    assert waterlogging["value"] == LEVEL and waterlogging["items"][0]["key"] == key
    assert waterlogging["items"][0]["above"] is True and waterlogging["items"][0]["threshold"] == 30
    assert _iot_value(page, "waterlogging") == str(LEVEL)
    shown = page.locator("[data-panel=iot_alarms] .cp-alarm-list").inner_text()
    assert "E2E 积水超过30厘米" in shown, shown
    page.evaluate(f"window.citybrainCockpit.openSensor('{key}')")
    page.wait_for_selector(f"#cp-detail:not([hidden]) [data-sensor='{key}']", timeout=2000)
    in_alarm = page.get_attribute("#cockpit", "data-label-sensor-alarm")
    assert in_alarm == "传感器告警" and in_alarm in page.locator("#cp-detail").inner_text()

    # The dispatched alarm opened an event (events.flows, channel sensor): the open count and the
    # map's event layer follow.
    event = None
    deadline = time.monotonic() + 10
    while event is None:
        assert time.monotonic() < deadline, "no event was opened for the dispatched alarm"
        rows = httpx.get(base + "/api/events", headers=admin, params={"since": since.isoformat(), "limit": 1000}).json()
        event = next((e for e in rows if e["channel"] == "sensor" and alarm["id"] in e["description"]), None)
        if event is None:
            time.sleep(0.5)
    assert event["category_code"] == "E0109" and event["urgency"] == "critical"
    page.wait_for_function(
        "(id) => window.citybrainCockpit.map.getOption().series.find((s) => s.id === 'events')"
        ".data.some((d) => d.eventId === id)", arg=event["id"], timeout=SCREEN_TIMEOUT_MS)
    page.wait_for_function(f"Number(document.querySelector('[data-vital=open]').dataset.value) > {open_before}",
                           timeout=SCREEN_TIMEOUT_MS)
    page.wait_for_function(f"document.getElementById('cp-ticker-list').textContent.includes('{event['tracking_no']}')",
                           timeout=SCREEN_TIMEOUT_MS)

    assert page.evaluate("window.__sameDocument === true")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.evaluate("window.citybrainCockpit.updates") > updates_before
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    print(f"cockpit showed the alarm {seen_after:.2f} s after the reading that raised it")
    assert page.outside_requests == []  # type: ignore[attr-defined]

    # Leave the demo as it was for the other tests: clear the alarm, delete the rule.
    r = httpx.post(f"{base}/api/iot/alarms/{alarm['id']}/clear", headers=admin)
    assert r.status_code == 200, r.text
    assert httpx.delete(f"{base}/api/iot/rules/{rule['id']}", headers=admin).status_code == 204
