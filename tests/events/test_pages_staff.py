"""Staff pages of the event command over HTTP: list and filters, detail with its action forms,
the whole workflow through the forms, refusals that change nothing, inbox, tasks, hotline entry."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from citybrain.events import catalog
from citybrain.events.models import Event
from event_helpers import SILULU, WANGCUN, counts, report
from helpers import csrf_from, sign_in


@pytest.fixture(autouse=True)
def _catalog(db, admin_actor) -> None:
    catalog.sync_catalog(db, actor=admin_actor)  # adds only what is missing


def _version(html: str, action: str) -> str:
    form = re.search(rf'data-action="{action}".*?name="expected_version" value="(\d+)"', html, re.S)
    assert form, f"no {action} form on the page"
    return form.group(1)


def act(client, event_id: int, action: str, *, version: str | None = None, **fields):  # noqa: ANN001, ANN201
    """Open the detail page as the signed-in user and submit the form of ``action``."""
    page = client.get(f"/events/{event_id}")
    assert page.status_code == 200, page.text[:300]
    data = {"csrf_token": csrf_from(page.text), "expected_version": version or _version(page.text, action), **fields}
    return client.post(f"/events/{event_id}/actions/{action}", data=data, follow_redirects=False)


def table(client, **params) -> str:  # noqa: ANN001
    """The list's table alone (the fragment htmx reloads), without the map's points."""
    response = client.get("/events", params={**params, "fragment": 1})
    assert response.status_code == 200
    return response.text


def status_of(db, event_id: int) -> str:
    db.expire_all()
    return db.get(Event, event_id).status


def _dispatched(db, admin_actor, township=SILULU, code="TE0101") -> Event:  # noqa: ANN001
    from citybrain.events import service

    event = report(db, who=None, township=township, category_code=code)
    service.transition(db, event_id=event.id, action="accept", actor=admin_actor)
    db.flush()
    assert event.status == "dispatched"
    return event


def test_command_centre_lists_events_with_filters(client, db, categories, admin_actor) -> None:
    here = report(db, who=None, township=SILULU)
    there = report(db, who=None, township=WANGCUN, category_code="TE0102")
    sign_in(client, "admin")
    page = client.get("/events")
    assert page.status_code == 200
    assert here.tracking_no in page.text and there.tracking_no in page.text
    assert 'id="event-map"' in page.text and "/static/js/events.js" in page.text

    only_here = table(client, township=SILULU)
    assert here.tracking_no in only_here and there.tracking_no not in only_here
    by_category = table(client, category="TE0102")
    assert there.tracking_no in by_category and here.tracking_no not in by_category

    from citybrain.events import service

    service.transition(db, event_id=here.id, action="accept", actor=admin_actor)
    db.flush()
    dispatched = table(client, status="dispatched")
    assert here.tracking_no in dispatched and there.tracking_no not in dispatched
    by_department = table(client, department="cityadmin")
    assert here.tracking_no in by_department and there.tracking_no not in by_department
    assert "<html" not in dispatched


def test_overdue_filter_marks_late_events_red(client, db, categories, frozen_clock) -> None:
    late = report(db, who=None, township=SILULU)
    frozen_clock[0] += timedelta(days=5)
    fresh = report(db, who=None, township=SILULU)
    sign_in(client, "admin")
    page = table(client, overdue="1")
    assert late.tracking_no in page and fresh.tracking_no not in page
    assert 'data-overdue="1"' in page
    assert fresh.tracking_no in table(client, overdue="0")


def test_list_is_paginated(client, db, categories) -> None:
    from citybrain.events import pages_staff

    made = [report(db, who=None, township=SILULU) for _ in range(3)]
    sign_in(client, "admin")
    original = pages_staff.PAGE_SIZE
    pages_staff.PAGE_SIZE = 2
    try:
        first = table(client, category="TE0101")
        second = table(client, category="TE0101", page=2)
    finally:
        pages_staff.PAGE_SIZE = original
    assert made[2].tracking_no in first and made[0].tracking_no not in first
    assert "page=2" in first
    assert made[0].tracking_no in second and made[2].tracking_no not in second


def test_staff_of_another_department_cannot_open_the_event(client, db, categories, admin_actor) -> None:
    event = _dispatched(db, admin_actor)
    sign_in(client, "ecology")
    assert client.get(f"/events/{event.id}").status_code == 403
    assert event.tracking_no not in client.get("/events").text  # neither in the table nor on the map
    sign_in(client, "cityadmin")
    page = client.get(f"/events/{event.id}")
    assert page.status_code == 200
    assert event.dispatch_reason and event.dispatch_reason in page.text.replace("&gt;", ">")


def test_whole_workflow_through_the_forms_to_closed(client, db, categories) -> None:
    event = report(db, who=None, township=SILULU)
    sign_in(client, "admin")
    detail = client.get(f"/events/{event.id}").text
    assert 'data-action="accept"' in detail and 'data-action="close"' not in detail
    response = act(client, event.id, "accept")
    assert response.status_code == 303 and response.headers["location"] == f"/events/{event.id}"
    assert status_of(db, event.id) == "dispatched"

    sign_in(client, "cityadmin")
    inbox = client.get("/inbox")
    assert inbox.status_code == 200 and event.tracking_no in inbox.text
    detail = client.get(f"/events/{event.id}").text
    assert 'data-action="start"' in detail and 'data-action="accept"' not in detail
    assert act(client, event.id, "start").status_code == 303
    assert act(client, event.id, "handle", result="垃圾已清运").status_code == 303
    assert status_of(db, event.id) == "handled"

    sign_in(client, "gridworker")
    tasks = client.get("/tasks")
    assert tasks.status_code == 200 and event.tracking_no in tasks.text
    response = client.post(f"/events/{event.id}/actions/verify_pass", follow_redirects=False, data={
        "csrf_token": csrf_from(tasks.text), "expected_version": _version(tasks.text, "verify_pass"),
        "next": "/tasks"})
    assert response.status_code == 303 and response.headers["location"] == "/tasks"
    assert status_of(db, event.id) == "verified"

    sign_in(client, "admin")
    assert act(client, event.id, "close").status_code == 303
    assert status_of(db, event.id) == "closed"
    page = client.get(f"/events/{event.id}").text
    for action in ("accept", "start", "handle", "verify_pass", "close"):
        assert f'data-log-action="{action}"' in page
    assert "垃圾已清运" in page


def test_verification_failure_sends_the_event_back_for_rework(client, db, categories, admin_actor) -> None:
    from citybrain.events import service

    event = _dispatched(db, admin_actor)
    service.transition(db, event_id=event.id, action="handle", actor=admin_actor, result="done")
    db.flush()
    sign_in(client, "gridworker")
    tasks = client.get("/tasks").text
    response = client.post(f"/events/{event.id}/actions/verify_fail", follow_redirects=False, data={
        "csrf_token": csrf_from(tasks), "expected_version": _version(tasks, "verify_fail"),
        "reason": "垃圾仍在", "next": "/tasks"})
    assert response.status_code == 303
    db.expire_all()
    assert db.get(Event, event.id).status == "dispatched" and db.get(Event, event.id).rework_count == 1


def test_illegal_action_is_refused_with_422_and_changes_nothing(client, db, categories) -> None:
    event = report(db, who=None, township=SILULU)
    sign_in(client, "admin")
    page = client.get(f"/events/{event.id}").text
    before = counts(db, event.id)
    response = client.post(f"/events/{event.id}/actions/close", follow_redirects=False, data={
        "csrf_token": csrf_from(page), "expected_version": _version(page, "accept")})
    assert response.status_code == 422
    assert "cannot close" in response.text and 'data-testid="action-error"' in response.text
    assert status_of(db, event.id) == "reported" and counts(db, event.id) == before
    missing_reason = act(client, event.id, "reject", reason="")
    assert missing_reason.status_code == 422 and status_of(db, event.id) == "reported"


def test_stale_version_gets_409_and_changes_nothing(client, db, categories, admin_actor) -> None:
    event = report(db, who=None, township=SILULU)
    sign_in(client, "admin")
    page = client.get(f"/events/{event.id}").text
    seen = _version(page, "accept")
    from citybrain.events import service

    service.transition(db, event_id=event.id, action="locate", actor=admin_actor,
                       lon=event.lon, lat=event.lat)  # someone else acts first
    db.flush()
    before = counts(db, event.id)
    response = client.post(f"/events/{event.id}/actions/accept", follow_redirects=False, data={
        "csrf_token": csrf_from(page), "expected_version": seen})
    assert response.status_code == 409
    assert 'data-testid="conflict"' in response.text and f'href="/events/{event.id}"' in response.text
    assert status_of(db, event.id) == "reported" and counts(db, event.id) == before


def test_action_without_csrf_is_refused(client, db, categories) -> None:
    event = report(db, who=None, township=SILULU)
    sign_in(client, "admin")
    page = client.get(f"/events/{event.id}").text
    response = client.post(f"/events/{event.id}/actions/accept", follow_redirects=False,
                           data={"expected_version": _version(page, "accept")})
    assert response.status_code == 403
    assert status_of(db, event.id) == "reported"


def test_staff_cannot_open_a_report_not_dispatched_to_them(client, db, categories) -> None:
    event = report(db, who=None, township=SILULU)
    sign_in(client, "cityadmin")
    # a citizen report is not yet the department's: not even readable
    assert client.get(f"/events/{event.id}").status_code == 403


def test_hotline_call_creates_an_event(client, db, categories) -> None:
    sign_in(client, "cityadmin")
    form = client.get("/events/new")
    assert form.status_code == 200 and 'name="reporter_phone"' in form.text
    from event_helpers import point_in

    lon, lat = point_in(db, SILULU)
    response = client.post("/events/new", follow_redirects=False, data={
        "csrf_token": csrf_from(form.text), "channel": "hotline", "category_code": "TE0101",
        "description": "市民来电：小区门口垃圾堆积", "reporter_name": "张先生", "reporter_phone": "13800001234",
        "lon": str(lon), "lat": str(lat), "crs": "wgs84"})
    assert response.status_code == 303
    event = db.scalar(select(Event).where(Event.channel == "hotline").order_by(Event.id.desc()))
    assert event is not None and event.reporter_phone == "13800001234" and event.township_code == SILULU
    confirmation = f"/events/new?channel=hotline&created={event.tracking_no}"  # not cityadmin's to read
    assert response.headers["location"] in (f"/events/{event.id}", confirmation)


def test_hotline_form_errors_are_shown_with_422(client, db, categories) -> None:
    sign_in(client, "cityadmin")
    form = client.get("/events/new")
    before = counts(db)
    response = client.post("/events/new", data={
        "csrf_token": csrf_from(form.text), "category_code": "TE0101", "description": "没有位置"})
    assert response.status_code == 422 and "location" in response.text
    assert counts(db)["events"] == before["events"]


def test_grid_worker_field_report(client, db, categories) -> None:
    sign_in(client, "gridworker")
    form = client.get("/events/new?channel=grid")
    assert form.status_code == 200 and 'id="gps-button"' in form.text and 'name="reporter_phone"' not in form.text
    response = client.post("/events/new", follow_redirects=False, data={
        "csrf_token": csrf_from(form.text), "channel": "grid", "category_code": "TE0101",
        "description": "巡查发现道路垃圾", "address": "丝绸路街道某路口"})
    assert response.status_code == 303
    event = db.scalar(select(Event).where(Event.channel == "grid").order_by(Event.id.desc()))
    assert event is not None and event.location_state == "manual"
    assert response.headers["location"] == f"/events/{event.id}"


def test_navigation_by_role_and_citizens_get_no_staff_pages(client) -> None:
    sign_in(client, "citizen")
    home = client.get("/").text
    for path in ('href="/events"', 'href="/inbox"', 'href="/tasks"', 'href="/events/new"'):
        assert path not in home
    for url in ("/events", "/inbox", "/tasks", "/events/new"):
        assert client.get(url).status_code == 403, url
    sign_in(client, "gridworker")
    home = client.get("/").text
    assert 'href="/tasks"' in home and 'href="/events/new"' in home and 'href="/inbox"' not in home
    sign_in(client, "cityadmin")
    home = client.get("/").text
    assert 'href="/inbox"' in home and 'href="/tasks"' not in home


def test_pages_need_login(client) -> None:
    for url in ("/events", "/inbox", "/events/stream", "/events/1"):
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), url


def test_stream_refuses_users_without_read_permission(client) -> None:
    sign_in(client, "citizen")
    assert client.get("/events/stream").status_code == 403


def test_detail_offers_nearby_duplicates_and_merges_through_the_form(client, db, categories) -> None:
    main = report(db, who=None)
    dup = report(db, who=None)
    sign_in(client, "admin")
    page = client.get(f"/events/{dup.id}")
    assert 'data-testid="duplicates"' in page.text and main.tracking_no in page.text
    form = {"into_id": str(main.id), "expected_version": str(dup.version)}
    assert client.post(f"/events/{dup.id}/merge", data=form, follow_redirects=False).status_code == 403
    assert status_of(db, dup.id) != "merged"
    done = client.post(f"/events/{dup.id}/merge", data={**form, "csrf_token": csrf_from(page.text)},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/events/{main.id}"
    assert status_of(db, dup.id) == "merged"
    before = counts(db)
    again = client.post(f"/events/{dup.id}/merge", data={**form, "csrf_token": csrf_from(page.text)},
                        follow_redirects=False)
    assert again.status_code in (409, 422)
    assert counts(db) == before


def test_merge_form_without_a_main_event_is_refused(client, db, categories) -> None:
    dup = report(db, who=None)
    sign_in(client, "admin")
    page = client.get(f"/events/{dup.id}")
    response = client.post(f"/events/{dup.id}/merge", data={"csrf_token": csrf_from(page.text), "into_id": ""})
    assert response.status_code == 422
    assert status_of(db, dup.id) != "merged"
