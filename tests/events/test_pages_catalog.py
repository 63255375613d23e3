"""The event catalog admin page: list, edit, and refusals that change nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from citybrain.core.models import AuditLog
from citybrain.events import catalog
from helpers import csrf_from, sign_in


def _category(db):
    return catalog.list_categories(db)[0]


def _form(category, **overrides):
    form = {"name": category.name, "description": category.description,
            "department_code": category.department_code, "urgency": category.urgency,
            "keywords": category.keywords}
    for key in ("township_handles", "public", "active"):
        if getattr(category, key):
            form[key] = "1"
    for stage, limit in category.time_limits.items():
        form[f"{stage}_value"] = catalog.format_limit(limit).split()[0]
        form[f"{stage}_unit"] = limit["unit"]
    form.update(overrides)
    return form


def _post(client, code, form):
    page = client.get(f"/admin/categories/{code}")
    assert page.status_code == 200
    return client.post(f"/admin/categories/{code}", data={**form, "csrf_token": csrf_from(page.text)},
                       follow_redirects=False)


def _audits(db):
    return db.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "event_category.update"))


def test_admin_sees_every_class_and_filters_by_kind_and_large_class(client, db):
    sign_in(client, "admin")
    page = client.get("/admin/categories")
    assert page.status_code == 200
    every = catalog.list_categories(db, active_only=False)
    assert all(f'data-code="{c.code}"' in page.text for c in every)
    component = next(c for c in every if c.kind == "component")
    event = next(c for c in every if c.kind == "event")
    filtered = client.get("/admin/categories", params={"kind": "event"}).text
    assert f'data-code="{event.code}"' in filtered and f'data-code="{component.code}"' not in filtered
    by_major = client.get("/admin/categories", params={"major": component.major_code}).text
    assert f'data-code="{component.code}"' in by_major and f'data-code="{event.code}"' not in by_major
    assert 'href="/admin/categories"' in page.text  # the navigation entry


def test_admin_edits_a_stage_limit_and_sees_it(client, db):
    sign_in(client, "admin")
    category = _category(db)
    before = _audits(db)
    response = _post(client, category.code, _form(category, handle_value="3", handle_unit="working_days"))
    assert response.status_code == 303
    db.expire_all()
    assert catalog.get_category(db, code=category.code).time_limits["handle"] == {"value": 3, "unit": "working_days"}
    assert _audits(db) == before + 1
    edit = client.get(f"/admin/categories/{category.code}").text
    assert 'name="handle_value" inputmode="decimal" size="6" value="3"' in edit


def test_admin_changes_department_and_flags(client, db):
    sign_in(client, "admin")
    category = _category(db)
    form = _form(category, department_code="housing", urgency="urgent")
    form.pop("public", None)
    assert _post(client, category.code, form).status_code == 303
    db.expire_all()
    changed = catalog.get_category(db, code=category.code)
    assert (changed.department_code, changed.urgency, changed.public) == ("housing", "urgent", False)


def test_department_staff_are_refused(client, db):
    sign_in(client, "cityadmin")
    assert client.get("/admin/categories").status_code == 403
    assert client.get(f"/admin/categories/{_category(db).code}").status_code == 403
    assert 'href="/admin/categories"' not in client.get("/").text


def test_bad_values_are_refused_with_422_and_change_nothing(client, db):
    sign_in(client, "admin")
    category = _category(db)
    limits, department = dict(category.time_limits), category.department_code
    before = _audits(db)
    cases = [
        (_form(category, handle_value="-2"), "positive"),
        (_form(category, verify_unit="fortnights"), "fortnights"),
        (_form(category, department_code="no-such-dept", handle_value="9"), "no-such-dept"),
        (_form(category, accept_value=""), "accept"),
    ]
    for form, reason in cases:
        response = _post(client, category.code, form)
        assert response.status_code == 422, reason
        assert 'role="alert"' in response.text and reason in response.text
        db.expire_all()
        unchanged = catalog.get_category(db, code=category.code)
        assert (unchanged.time_limits, unchanged.department_code) == (limits, department)
    assert _audits(db) == before


def test_post_without_csrf_token_is_refused(client, db):
    sign_in(client, "admin")
    category = _category(db)
    limits = dict(category.time_limits)
    response = client.post(f"/admin/categories/{category.code}", data=_form(category, handle_value="7"),
                           follow_redirects=False)
    assert response.status_code == 403
    db.expire_all()
    assert catalog.get_category(db, code=category.code).time_limits == limits


def test_unknown_class_is_not_found(client):
    sign_in(client, "admin")
    assert client.get("/admin/categories/E9999").status_code == 404
