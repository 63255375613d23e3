"""The web shell over HTTP: login and logout, CSRF on every form, admin forms, navigation by role."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core.auth import SESSION_COOKIE
from citybrain.org.models import Department, User
from helpers import QUICK_PASSWORD, csrf_from, demo_password, login, quick_user, sign_in


def _users_named(db: Session, username: str) -> int:
    return db.scalar(select(func.count()).select_from(User).where(func.lower(User.username) == username.lower()))


def _department(db: Session, code: str) -> Department | None:
    db.expire_all()
    return db.scalar(select(Department).where(Department.code == code))


def _post_login(client, username: str, password: str, **extra: str):  # noqa: ANN001, ANN202
    page = client.get("/login")
    data = {"username": username, "password": password, "csrf_token": csrf_from(page.text), "next": "/"}
    return client.post("/login", data=data | extra, follow_redirects=False)


def _form_token(client, path: str) -> str:  # noqa: ANN001
    page = client.get(path)
    assert page.status_code == 200, page.text[:300]
    return csrf_from(page.text)


NEW_DEPT = {"code": "audit", "name": "区审计局", "kind": "bureau", "division_code": "", "description": ""}
NEW_USER = {"username": "marketstaff", "password": "Market-pass-1", "role": "staff", "department": "health",
            "display_name": "卫健局新人"}


# --- login and logout --------------------------------------------------------------------


def test_login_page_is_in_chinese_by_default(client):
    page = client.get("/login")
    assert page.status_code == 200 and '<html lang="zh-CN">' in page.text
    assert 'name="csrf_token"' in page.text


def test_language_switch_to_english_sets_html_lang_en(client):
    token = _form_token(client, "/login")
    r = client.post("/lang", data={"lang": "en", "next": "/login", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert '<html lang="en">' in client.get("/login").text


def test_an_unknown_language_is_ignored(client):
    token = _form_token(client, "/login")
    client.post("/lang", data={"lang": "xx", "next": "/login", "csrf_token": token})
    assert '<html lang="zh-CN">' in client.get("/login").text


def test_right_password_logs_in_and_lands_on_the_overview(client):
    r = _post_login(client, "admin", demo_password("admin"))
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert SESSION_COOKIE in r.cookies
    home = client.get("/")
    assert home.status_code == 200 and 'data-testid="whoami"' in home.text and "admin" in home.text


def test_wrong_password_shows_an_error_and_sets_no_session_cookie(client, db):
    quick_user(db)
    r = _post_login(client, "quick", "Wrong-pass-0")
    assert r.status_code == 401 and 'role="alert"' in r.text
    assert SESSION_COOKIE not in r.cookies and SESSION_COOKIE not in client.cookies
    assert client.get("/", follow_redirects=False).status_code == 303


def test_repeated_wrong_passwords_are_slowed_down_on_the_login_page(client, db, settings, frozen_clock):
    quick_user(db)
    for _ in range(settings.login_max_failures):
        assert _post_login(client, "quick", "Wrong-pass-0").status_code == 401
    r = _post_login(client, "quick", QUICK_PASSWORD)
    assert r.status_code == 429 and r.headers["Retry-After"] == str(settings.login_lockout_s)
    assert SESSION_COOKIE not in r.cookies and 'role="alert"' in r.text


@pytest.mark.parametrize("token", [None, "", "0" * 64])
def test_login_form_without_a_valid_csrf_token_is_refused(client, token):
    client.get("/login")
    data = {"username": "admin", "password": demo_password("admin"), "next": "/"}
    if token is not None:
        data["csrf_token"] = token
    r = client.post("/login", data=data, follow_redirects=False)
    assert r.status_code == 403 and 'role="alert"' in r.text
    assert SESSION_COOKIE not in r.cookies


def test_csrf_token_of_another_visitor_is_refused(app, client):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://testserver") as other:
        foreign = _form_token(other, "/login")
    client.get("/login")
    r = client.post("/login", data={"username": "admin", "password": demo_password("admin"),
                                    "csrf_token": foreign}, follow_redirects=False)
    assert r.status_code == 403


def test_anonymous_visitor_is_redirected_to_login_with_next(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"


def test_anonymous_visitor_of_an_admin_page_comes_back_after_login(client):
    r = client.get("/admin/users", follow_redirects=False)
    assert r.headers["location"] == "/login?next=/admin/users"
    logged = _post_login(client, "admin", demo_password("admin"), next="/admin/users")
    assert logged.headers["location"] == "/admin/users"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_login_next_refuses_anything_but_a_local_path(client, db, target):
    quick_user(db)
    r = _post_login(client, "quick", QUICK_PASSWORD, next=target)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_login_page_does_not_echo_an_absolute_next(client):
    page = client.get("/login", params={"next": "https://evil.example/"})
    assert "evil.example" not in page.text and 'name="next" value="/"' in page.text


def test_logout_ends_the_session_even_for_a_replayed_cookie(client):
    login(client, "admin", demo_password("admin"))
    cookie = client.cookies[SESSION_COOKIE]
    token = _form_token(client, "/")
    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert SESSION_COOKIE not in client.cookies
    client.cookies.set(SESSION_COOKIE, cookie)
    replay = client.get("/", follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/login")


def test_logout_without_csrf_token_keeps_the_session(client):
    sign_in(client, "admin")
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 200


def test_a_forged_session_cookie_is_treated_as_anonymous(client):
    client.cookies.set(SESSION_COOKIE, "not-a-signed-value")
    assert client.get("/", follow_redirects=False).status_code == 303


# --- navigation by role ------------------------------------------------------------------


def test_admin_navigation_shows_admin_pages(client):
    sign_in(client, "admin")
    home = client.get("/").text
    for path in ("/map", "/admin/departments", "/admin/users", "/admin/audit", "/account/tokens"):
        assert f'href="{path}"' in home


def test_grid_worker_navigation_hides_admin_pages_and_they_are_refused(client):
    sign_in(client, "gridworker")
    home = client.get("/").text
    assert 'href="/map"' in home
    for path in ("/admin/users", "/admin/departments", "/admin/audit", "/account/tokens"):
        assert f'href="{path}"' not in home
        assert client.get(path).status_code == 403


def test_staff_see_users_but_not_the_audit_log(client):
    sign_in(client, "cityadmin")
    home = client.get("/").text
    assert 'href="/admin/users"' in home and 'href="/admin/audit"' not in home
    assert client.get("/admin/audit").status_code == 403


def test_staff_users_page_lists_only_their_department(client):
    sign_in(client, "cityadmin")
    page = client.get("/admin/users")
    assert page.status_code == 200
    assert "<td>cityadmin</td>" in page.text
    assert "<td>ecology</td>" not in page.text and "<td>admin</td>" not in page.text
    assert 'action="/admin/users"' not in page.text  # no create form without org:write


def test_citizen_sees_only_the_overview(client):
    sign_in(client, "citizen")
    home = client.get("/").text
    for path in ("/map", "/admin/users", "/admin/departments", "/admin/audit", "/account/tokens"):
        assert f'href="{path}"' not in home


# --- admin forms -------------------------------------------------------------------------


def test_admin_creates_a_department_through_the_form(client, db):
    sign_in(client, "admin")
    token = _form_token(client, "/admin/departments")
    r = client.post("/admin/departments", data=NEW_DEPT | {"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/departments"
    dept = _department(db, "audit")
    assert dept is not None and dept.name == "区审计局"
    assert "区审计局" in client.get("/admin/departments").text


def test_admin_edits_a_department_through_the_form(client, db):
    sign_in(client, "admin")
    dept = _department(db, "water")
    token = _form_token(client, f"/admin/departments/{dept.id}")
    r = client.post(f"/admin/departments/{dept.id}", data={"name": "区水务局", "kind": "bureau",
                    "description": "Water", "active": "1", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert _department(db, "water").name == "区水务局"


def test_duplicate_department_through_the_form_is_refused_and_changes_nothing(client, db):
    sign_in(client, "admin")
    token = _form_token(client, "/admin/departments")
    before = db.scalar(select(func.count()).select_from(Department))
    r = client.post("/admin/departments", data=NEW_DEPT | {"code": "bigdata", "csrf_token": token})
    assert r.status_code == 422 and 'role="alert"' in r.text and "bigdata" in r.text
    assert db.scalar(select(func.count()).select_from(Department)) == before


def test_admin_creates_a_user_through_the_form_who_can_then_log_in(app, client, db):
    sign_in(client, "admin")
    token = _form_token(client, "/admin/users")
    r = client.post("/admin/users", data=NEW_USER | {"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/users"
    assert _users_named(db, "marketstaff") == 1
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://testserver") as fresh:
        assert _post_login(fresh, "marketstaff", "Market-pass-1").status_code == 303


@pytest.mark.parametrize("username", ["cityadmin", "CityAdmin"])
def test_duplicate_username_through_the_form_is_422_and_adds_no_user(client, db, username):
    sign_in(client, "admin")
    token = _form_token(client, "/admin/users")
    r = client.post("/admin/users", data=NEW_USER | {"username": username, "csrf_token": token})
    assert r.status_code == 422 and 'role="alert"' in r.text and "already taken" in r.text
    assert "Market-pass-1" not in r.text  # the password is not echoed back
    assert _users_named(db, "cityadmin") == 1


def test_invalid_user_form_is_422_and_adds_no_user(client, db):
    sign_in(client, "admin")
    token = _form_token(client, "/admin/users")
    r = client.post("/admin/users", data=NEW_USER | {"department": "", "csrf_token": token})
    assert r.status_code == 422 and "needs a department" in r.text
    assert _users_named(db, "marketstaff") == 0


@pytest.mark.parametrize(("path", "data"), [
    ("/admin/departments", NEW_DEPT),
    ("/admin/users", NEW_USER),
])
@pytest.mark.parametrize("token", [None, "wrong"])
def test_admin_forms_without_a_valid_csrf_token_are_403_and_create_nothing(client, db, path, data, token):
    sign_in(client, "admin")
    _form_token(client, path)
    form = dict(data) if token is None else data | {"csrf_token": token}
    r = client.post(path, data=form, follow_redirects=False)
    assert r.status_code == 403
    assert _department(db, "audit") is None and _users_named(db, "marketstaff") == 0


def test_a_csrf_token_from_before_login_does_not_work_after_it(client, db):
    anonymous_token = _form_token(client, "/login")
    login(client, "admin", demo_password("admin"))
    r = client.post("/admin/departments", data=NEW_DEPT | {"csrf_token": anonymous_token})
    assert r.status_code == 403 and _department(db, "audit") is None


def test_staff_cannot_post_to_admin_forms(client, db):
    sign_in(client, "cityadmin")
    token = _form_token(client, "/admin/users")
    r = client.post("/admin/users", data=NEW_USER | {"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 403 and _users_named(db, "marketstaff") == 0
