"""Who may open the cockpit, the wall screen's display token, and the JSON it is drawn from."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from citybrain.cockpit import display
from citybrain.core.i18n import LANG_COOKIE
from citybrain.events.enums import OPEN_STATUSES
from citybrain.events.models import Event
from event_helpers import report
from helpers import csrf_from, sign_in, token_for


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/cockpit", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/cockpit"
    assert client.get("/api/cockpit/snapshot").status_code == 401
    assert client.get("/cockpit/briefing", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("username", ["citizen", "cityadmin", "gridworker"])
def test_citizens_and_staff_may_not_open_the_cockpit(client, username):
    sign_in(client, username)
    assert client.get("/cockpit").status_code == 403
    assert client.get("/api/cockpit/snapshot").status_code == 403
    assert client.get("/cockpit/display-tokens").status_code == 403


def test_leader_sees_the_big_screen_with_the_database_figures(client, db, categories):
    report(db, who=None)
    db.commit()
    sign_in(client, "leader")
    client.cookies.set(LANG_COOKIE, "en")
    page = client.get("/cockpit")
    assert page.status_code == 200
    open_now = db.scalar(select(func.count()).select_from(Event)
                         .where(Event.status.in_([s.value for s in OPEN_STATUSES])))
    assert f'data-vital="open" data-testid="open-events" data-value="{open_now}"' in page.text
    assert "/static/vendor/echarts/echarts.min.js" in page.text and "/static/js/cockpit.js" in page.text
    assert "Not connected yet" in page.text  # IoT and data-pool panels until their providers register
    assert 'data-can-read-events="true"' in page.text
    assert 'href="/cockpit"' in client.get("/").text  # in the navigation
    snap = client.get("/api/cockpit/snapshot").json()
    assert snap["events"]["open"] == open_now


def test_snapshot_json_has_no_reporter_names_or_phones(client, db, categories):
    report(db, who=None, reporter_name="李四", reporter_phone="13900001111", reporter_email="li@example.org")
    db.commit()
    sign_in(client, "leader")
    text = client.get("/api/cockpit/snapshot").text
    assert "李四" not in text and "13900001111" not in text and "li@example.org" not in text
    assert "reporter" not in text


def test_drill_down_replay_divisions_and_briefing(client, db, categories):
    event = report(db, who=None)
    db.commit()
    sign_in(client, "leader")
    t = client.get(f"/api/cockpit/townships/{event.township_code}").json()
    assert event.id in [e["id"] for e in t["events"]]
    assert client.get("/api/cockpit/townships/nowhere").status_code == 404
    assert event.id in [row[1] for row in client.get("/api/cockpit/replay").json()["rows"]]
    assert len(client.get("/api/cockpit/divisions").json()["features"]) == 11
    brief = client.get("/cockpit/briefing")
    assert brief.status_code == 200 and 'data-testid="briefing-figures"' in brief.text
    assert "/static/css/cockpit.css" in brief.text  # its @media print rules


# --- display tokens ------------------------------------------------------------------------------


def _new_display_link(client) -> str:  # noqa: ANN001
    sign_in(client, "admin")
    page = client.get("/cockpit/display-tokens")
    assert page.status_code == 200
    response = client.post("/cockpit/display-tokens", data={"label": "指挥中心大屏", "days": "7",
                                                             "csrf_token": csrf_from(page.text)})
    assert response.status_code == 200, response.text[:300]
    start = response.text.index('data-testid="display-link">') + len('data-testid="display-link">')
    link = response.text[start:response.text.index("</code>", start)]
    assert "/cockpit?display=cbt_" in link and "指挥中心大屏" in response.text
    client.cookies.clear()
    return link[link.index("/cockpit"):]


def test_a_display_token_opens_the_cockpit_through_an_httponly_cookie(client):
    path = _new_display_link(client)
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/cockpit"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{display.DISPLAY_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "cbt_" not in cookie  # the token is signed into the cookie, not kept in plain in the URL
    page = client.get("/cockpit")
    assert page.status_code == 200 and 'data-can-read-events="false"' in page.text
    assert "/events/" not in page.text.split('id="cp-initial"')[0].split("data-township-url")[0]
    assert client.get("/api/cockpit/snapshot").status_code == 200
    assert client.get("/api/cockpit/divisions").status_code == 200
    assert client.get("/cockpit/briefing").status_code == 200


def test_a_display_token_reaches_the_cockpit_only(client):
    path = _new_display_link(client)
    token = path.split("display=", 1)[1]
    client.get(path)
    assert client.get("/api/org/users").status_code == 401  # the cookie counts for the cockpit only
    assert client.get("/", follow_redirects=False).status_code == 303
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/org/users", headers=headers).status_code == 403
    assert client.get("/api/events", headers=headers).status_code == 403
    assert client.get("/api/geo/divisions", headers=headers).status_code == 403
    assert client.get("/api/cockpit/snapshot", headers=headers).status_code == 200


def test_a_revoked_display_token_gets_the_401_page(client):
    path = _new_display_link(client)
    client.get(path)
    assert client.get("/cockpit").status_code == 200
    with client.app.state.sessionmaker() as db:
        listed = display.listing(db, actor=_admin(db), now=_now())
        db.commit()
    screen_cookies = dict(client.cookies)
    sign_in(client, "admin")
    page = client.get("/cockpit/display-tokens")
    revoke = client.post(f"/cockpit/display-tokens/{listed[0].id}/revoke",
                         data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert revoke.status_code == 303
    client.cookies.set(LANG_COOKIE, "en")
    assert "Revoked" in client.get("/cockpit/display-tokens").text
    client.cookies.clear()
    for name, value in screen_cookies.items():
        client.cookies.set(name, value)
    client.cookies.set(LANG_COOKIE, "en")
    response = client.get("/cockpit")
    assert response.status_code == 401
    assert "display token" in response.text.lower() and "no longer valid" in response.text.lower()
    assert client.get("/api/cockpit/snapshot").status_code == 401
    assert client.get("/cockpit/stream").status_code == 401
    assert client.get(path).status_code == 401  # nor can the link be used again


def test_an_expired_display_token_gets_the_401_page(client, frozen_clock):
    path = _new_display_link(client)
    client.get(path)
    assert client.get("/cockpit").status_code == 200
    frozen_clock[0] += timedelta(days=8)
    client.cookies.set(LANG_COOKIE, "en")
    response = client.get("/cockpit")
    assert response.status_code == 401 and "no longer valid" in response.text
    assert client.get("/api/cockpit/snapshot").status_code == 401


def test_a_forged_or_ordinary_token_is_not_a_display_token(client):
    assert client.get("/cockpit?display=cbt_nope_nope").status_code == 401
    leader = token_for(client, "leader")["Authorization"].split()[1]
    assert client.get(f"/cockpit?display={leader}").status_code == 401  # full leader scopes: refused
    client.cookies.set(display.DISPLAY_COOKIE, "not-signed")
    assert client.get("/cockpit", follow_redirects=False).status_code == 303  # ignored: login


def test_leaders_cannot_create_display_tokens_and_bad_input_is_refused(client):
    sign_in(client, "leader")
    assert client.get("/cockpit/display-tokens").status_code == 403
    client.cookies.clear()
    sign_in(client, "admin")
    page = client.get("/cockpit/display-tokens")
    bad = client.post("/cockpit/display-tokens", data={"label": " ", "days": "7", "csrf_token": csrf_from(page.text)})
    assert bad.status_code == 422
    bad = client.post("/cockpit/display-tokens", data={"label": "x", "days": "999",
                                                       "csrf_token": csrf_from(page.text)})
    assert bad.status_code == 422
    assert client.post("/cockpit/display-tokens", data={"label": "x", "days": "7"}).status_code == 403  # CSRF


def _admin(db):  # noqa: ANN001, ANN202
    from citybrain.org import auth, service

    return auth.actor_for(service.get_user_by_username(db, username="admin"), via="session")


def _now():  # noqa: ANN202
    from citybrain.core import clock

    return clock.now()


def test_snapshot_is_valid_json_for_the_page(client):
    sign_in(client, "leader")
    page = client.get("/cockpit").text
    start = page.index('<script type="application/json" id="cp-initial">') + len(
        '<script type="application/json" id="cp-initial">')
    embedded = json.loads(page[start:page.index("</script>", start)])
    assert set(embedded) >= {"events", "on_time", "top_categories", "top_townships", "ticker", "points", "panels"}
