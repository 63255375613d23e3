"""Evaluation (综合评价) on a small hand-built history with known answers, and its exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook

from citybrain.core.errors import Invalid
from citybrain.core.i18n import LANG_COOKIE
from citybrain.events import evaluation, service
from event_helpers import SILULU, WANGCUN, actor, report
from helpers import sign_in

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # Thursday 09:00 China time, a working day


def go(db, event, action, who, **kw):
    return service.transition(db, event_id=event.id, action=action, actor=who, **kw)


@pytest.fixture
def history(db, categories, frozen_clock, admin_actor):
    """A: handled on time and closed; B: handled late, reworked, closed; C: extended, in progress;
    F (王村镇): dispatched and overdue by the end; D reported only and E rejected are not counted."""
    staff, grid = actor(db, "cityadmin"), actor(db, "gridworker")
    frozen_clock[0] = T0
    a, c = report(db, who=None), report(db, who=None)
    f = report(db, who=None, township=WANGCUN)
    report(db, who=None)  # D: still waiting to be accepted
    e = report(db, who=None)
    for event in (a, c, f):
        go(db, event, "accept", admin_actor)
    go(db, e, "reject", admin_actor, reason="不属于城管")
    frozen_clock[0] = T0 + timedelta(minutes=30)  # 09:30
    go(db, a, "handle", staff, result="已清运")  # 0.5 working hours
    go(db, a, "verify_pass", grid)
    go(db, a, "close", admin_actor)
    go(db, c, "request_extension", staff, reason="需要协调", value=2, unit="working_days")
    go(db, c, "approve_extension", admin_actor)
    b = report(db, who=None)
    go(db, b, "accept", admin_actor)  # handle due 15:00
    frozen_clock[0] = T0 + timedelta(hours=6, minutes=30)  # 15:30: late
    go(db, b, "handle", staff, result="已清运")  # 09:30-12:00 + 13:30-15:30 = 4.5 working hours
    go(db, b, "verify_fail", grid, reason="仍有垃圾")
    frozen_clock[0] = T0 + timedelta(hours=7)  # 16:00
    go(db, b, "handle", staff, result="再次清运")  # 0.5 working hours
    go(db, b, "verify_pass", grid)
    go(db, b, "close", admin_actor)
    a.rating, b.rating = 5, 3
    db.flush()
    return {"a": a, "b": b, "c": c, "f": f, "staff": staff}


def run(db, by="department", **kw):
    return evaluation.evaluate(db, period_start=T0 - timedelta(minutes=1), period_end=T0 + timedelta(hours=8),
                               by=by, now=T0 + timedelta(hours=7), **kw)


def test_department_numbers_match_the_formulas(db, history):
    [row] = run(db)
    assert row.key == "cityadmin"
    assert (row.due, row.closed, row.closed_on_time) == (4, 2, 1)
    assert (row.dispatched, row.handled, row.handled_on_time) == (4, 2, 1)
    assert (row.rework, row.extended, row.overdue) == (1, 1, 2)
    assert row.close_rate == 0.5 and row.on_time_close_rate == 0.25
    assert row.on_time_handle_rate == 0.25 and row.rework_rate == 0.5 and row.extension_rate == 0.25
    assert row.handling_rounds == 3 and row.avg_handling_hours == pytest.approx(5.5 / 3)
    assert row.satisfaction == 4.0 and row.rated == 2


def test_township_grouping_and_total(db, history):
    rows = run(db, by="township")
    assert [(r.key, r.due, r.overdue) for r in rows] == [(SILULU, 3, 1), (WANGCUN, 1, 1)]
    assert rows[1].name == "王村镇"
    whole = evaluation.total(rows)
    assert (whole.due, whole.closed, whole.overdue) == (4, 2, 2) and whole.close_rate == 0.5
    assert [r.key for r in run(db, by="township", township_code=WANGCUN)] == [WANGCUN]
    assert run(db, department_id=history["staff"].department_id)[0].due == 4


def test_bad_arguments_are_refused():
    with pytest.raises(Invalid):
        evaluation.parse_month("2026-13")
    with pytest.raises(Invalid):
        evaluation.parse_month("november")
    label, start, end = evaluation.parse_month("2026-12")
    assert label == "2026-12" and start.utcoffset() == timedelta(hours=8)
    assert (end - start) == timedelta(days=31) and end.month == 1 and end.year == 2027
    assert evaluation.parse_month("", now=datetime(2026, 11, 30, 17, 0, tzinfo=UTC))[0] == "2026-12"


def test_page_and_exports(client, db, history, frozen_clock):
    sign_in(client, "leader")
    client.cookies.set(LANG_COOKIE, "en")
    page = client.get("/evaluation?month=2026-11")
    assert page.status_code == 200 and 'data-testid="evaluation-table"' in page.text
    assert "区综合行政执法局" in page.text and 'href="/evaluation"' in page.text

    response = client.get("/evaluation.csv?month=2026-11&by=township")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header, body = table[0], {r[0]: r for r in table[1:]}
    assert header[0] == "Code" and body[WANGCUN][header.index("Overdue")] == "1"
    assert body[SILULU][header.index("Cases due to close")] >= "3"

    response = client.get("/evaluation.xlsx?month=2026-11")
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:3] == ("Code", "Name", "Cases due to close")
    cityadmin = next(r for r in values if r[0] == "cityadmin")
    assert cityadmin[values[0].index("Closed")] >= 2
    assert values[-1][1] == "Total"

    assert client.get("/evaluation?by=nobody").status_code == 422


def test_staff_see_their_department_and_citizens_see_nothing(client, db, history):
    sign_in(client, "cityadmin")
    page = client.get("/evaluation?month=2026-11&by=department")
    assert page.status_code == 200 and "区综合行政执法局" in page.text
    sign_in(client, "citizen")
    assert client.get("/evaluation", follow_redirects=False).status_code == 403
    assert 'href="/evaluation"' not in client.get("/").text
