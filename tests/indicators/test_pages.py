"""The indicator pages: table, report form with evidence, annual report as HTML and PDF, API."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from citybrain.indicators import service
from citybrain.indicators.models import IndicatorReport
from citybrain.org import service as org_service
from helpers import csrf_from, quick_user, sign_in

from .conftest import TINY_PDF, evidence_files


@pytest.fixture
def bigdata_staff(db):  # noqa: ANN001, ANN201
    dept = org_service.get_department_by_code(db, code="bigdata")
    return quick_user(db, "bd-staff", role="staff", department_id=dept.id)


def form_page(client, code="fibre_household"):  # noqa: ANN001, ANN201
    page = client.get(f"/indicators/{code}")
    assert page.status_code == 200
    return page


def post_report(client, token, *, code="fibre_household", value="91", as_of="2026-06-30",  # noqa: ANN001, ANN201
                evidence=("proof.pdf", TINY_PDF, "application/pdf")):
    data = {"value": value, "as_of": as_of, "note": "季度报表"}
    if token is not None:
        data["csrf_token"] = token
    files = {"evidence": evidence} if evidence else {"evidence": ("", b"", "application/octet-stream")}
    return client.post(f"/indicators/{code}/reports", data=data, files=files, follow_redirects=False)


def report_count(db) -> int:  # noqa: ANN001
    return db.scalar(select(func.count()).select_from(IndicatorReport))


def test_table_lists_every_indicator_with_status(client, frozen_clock):
    sign_in(client, "leader")
    page = client.get("/indicators")
    assert page.status_code == 200
    for row in service.load_indicator_rows():
        assert f'data-code="{row["code"]}"' in page.text and row["name"] in page.text
    assert 'data-status="no_data"' in page.text
    assert "数据资源池未接入" in page.text  # the data pool's reason, translated
    assert "规划指标" in page.text  # nav entry


def test_department_staff_reports_with_evidence(client, db, frozen_clock, bigdata_staff, settings):
    sign_in(client, "bd-staff")
    page = form_page(client)
    assert 'data-testid="report-form"' in page.text
    response = post_report(client, csrf_from(page.text))
    assert response.status_code == 303, response.text[:500]
    detail = client.get(response.headers["location"])
    assert 'data-testid="report-saved"' in detail.text and "2026-06-30" in detail.text
    [stored] = db.scalars(select(IndicatorReport)).all()
    assert stored.value == 91 and stored.department_id == bigdata_staff.department_id
    assert evidence_files(settings.data_dir) and evidence_files(settings.data_dir)[0].read_bytes() == TINY_PDF
    download = client.get(f"/indicators/evidence/{stored.id}")
    assert download.status_code == 200 and download.content == TINY_PDF
    assert download.headers["content-type"] == "application/pdf"


@pytest.mark.parametrize(("changes", "message"), [
    ({"value": "120"}, "超出有效范围"),
    ({"value": "abc"}, "必须是数字"),
    ({"evidence": None}, "须附证明材料"),
    ({"evidence": ("proof.pdf", b"plain text pretending", "application/pdf")}, "不是文档"),
    ({"evidence": ("setup.exe", b"MZ\x90\x00" + b"\x00" * 60, "application/octet-stream")}, "不是文档"),
    ({"as_of": "2026-12-01"}, "不能晚于今天"),
])
def test_bad_reports_are_refused_with_a_message_and_nothing_stored(client, db, frozen_clock, bigdata_staff,
                                                                   settings, changes, message):
    sign_in(client, "bd-staff")
    response = post_report(client, csrf_from(form_page(client).text), **changes)
    assert response.status_code == 422
    assert 'data-testid="report-error"' in response.text and message in response.text
    assert report_count(db) == 0 and evidence_files(settings.data_dir) == []


def test_missing_csrf_token_is_refused(client, db, frozen_clock, bigdata_staff, settings):
    sign_in(client, "bd-staff")
    form_page(client)
    assert post_report(client, None).status_code == 403
    assert report_count(db) == 0 and evidence_files(settings.data_dir) == []


def test_staff_of_another_department_is_refused(client, db, frozen_clock, settings):
    sign_in(client, "cityadmin")
    page = form_page(client)
    assert 'data-testid="report-form"' not in page.text
    assert post_report(client, csrf_from(page.text)).status_code == 403
    assert report_count(db) == 0 and evidence_files(settings.data_dir) == []


def test_leader_reads_but_may_not_report_and_citizen_may_not_read(client, frozen_clock):
    sign_in(client, "leader")
    page = form_page(client)
    assert post_report(client, csrf_from(page.text)).status_code == 403
    client.cookies.clear()
    sign_in(client, "citizen")
    assert client.get("/indicators").status_code == 403


def test_admin_reports_for_any_department_and_history_is_newest_first(client, db, frozen_clock):
    sign_in(client, "admin")
    for value, as_of in (("86", "2023-06-30"), ("91", "2026-06-30"), ("88", "2024-06-30")):
        assert post_report(client, csrf_from(form_page(client).text), value=value, as_of=as_of).status_code == 303
    page = form_page(client).text
    assert page.index("2026-06-30") < page.index("2024-06-30") < page.index("2023-06-30")
    assert "<polyline" in client.get("/indicators").text


def test_computed_indicator_has_no_form_and_explains_itself(client, frozen_clock):
    sign_in(client, "admin")
    page = form_page(client, "thematic_databases")
    assert 'data-testid="report-form"' not in page.text
    assert 'data-testid="no-data-reason"' in page.text
    assert post_report(client, csrf_from(page.text), code="thematic_databases", value="3").status_code == 422


def test_annual_report_html_lists_every_indicator(client, frozen_clock):
    sign_in(client, "admin")
    post_report(client, csrf_from(form_page(client).text), value="91", as_of="2026-06-30")
    page = client.get("/indicators/report/2026")
    assert page.status_code == 200
    for row in service.load_indicator_rows():
        assert f'data-code="{row["code"]}"' in page.text and row["name"] in page.text
    assert 'data-testid="reports-in-year"' in page.text
    assert client.get("/indicators/report/2030").status_code == 404
    assert client.get("/indicators/report/2020").status_code == 404


def test_annual_report_pdf(client, frozen_clock):
    sign_in(client, "leader")
    response = client.get("/indicators/report/2025.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert b"STSong-Light" in response.content


def test_api_returns_progress_summary(client, frozen_clock):
    sign_in(client, "leader")
    rows = client.get("/api/indicators").json()
    assert [r["code"] for r in rows] == [r["code"] for r in service.load_indicator_rows()]
    grid = next(r for r in rows if r["code"] == "merged_grid_departments")
    assert grid["source"] == "computed" and grid["status"] == "on_track"
    assert client.get("/api/indicators/fibre_household/reports").json() == []
    client.cookies.clear()
    sign_in(client, "citizen")
    assert client.get("/api/indicators").status_code == 403
