"""Who may use the JSON API: credentials, permissions, department scoping, CSRF for cookies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from citybrain.core.permissions import ROLE_PERMISSIONS, Role
from citybrain.org.models import Department, User
from helpers import sign_in, token_for

NEW_USER = {"username": "apiuser", "password": "Api-pass-123", "role": "staff", "department": "health"}


def _users_named(db, username: str) -> int:  # noqa: ANN001
    return db.scalar(select(func.count()).select_from(User).where(func.lower(User.username) == username.lower()))


@pytest.mark.parametrize("path", ["/api/org/users", "/api/org/me", "/api/org/departments", "/api/audit/verify"])
def test_no_credentials_is_401_with_a_bearer_challenge(client, path):
    r = client.get(path)
    assert r.status_code == 401 and r.json()["detail"] == "authentication required"
    assert r.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("header", "reason"), [
    ("Bearer garbage", "malformed token"),
    ("Bearer cbt_000000000000_nosuchsecret", "unknown token"),
])
def test_a_bad_bearer_token_is_401_and_says_why(client, header, reason):
    r = client.get("/api/org/me", headers={"Authorization": header})
    assert r.status_code == 401 and r.json()["detail"] == f"invalid bearer token: {reason}"


def test_a_bad_bearer_token_is_refused_even_with_a_valid_session(client):
    sign_in(client, "admin")
    assert client.get("/api/org/me").status_code == 200
    r = client.get("/api/org/me", headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 401


def test_an_expired_bearer_token_is_401_and_says_so(client, frozen_clock):
    headers = token_for(client, "admin", days=1)
    frozen_clock[0] += timedelta(days=2)
    r = client.get("/api/org/users", headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == "invalid bearer token: token expired"


def test_citizen_is_403_on_the_user_list(client):
    r = client.get("/api/org/users", headers=token_for(client, "citizen"))
    assert r.status_code == 403 and "org:read" in r.json()["detail"] and r.json()["code"] == "forbidden"


def test_grid_worker_is_403_on_the_audit_log_but_reads_geography(client):
    headers = token_for(client, "gridworker")
    assert client.get("/api/audit/verify", headers=headers).status_code == 403
    assert client.get("/api/geo/divisions", headers=headers).status_code == 200


def test_me_reports_the_callers_role_and_permissions(client):
    me = client.get("/api/org/me", headers=token_for(client, "ecology")).json()
    assert (me["username"], me["role"], me["via"]) == ("ecology", "staff", "token")
    assert set(me["permissions"]) == ROLE_PERMISSIONS[Role.STAFF]
    assert "org:read" in me["permissions"] and "org:write" not in me["permissions"]


def test_staff_see_only_their_departments_users(client, db):
    ecology = db.scalar(select(Department.id).where(Department.code == "ecology"))
    users = client.get("/api/org/users", headers=token_for(client, "ecology")).json()
    assert users and {u["department_id"] for u in users} == {ecology}
    assert {u["department_code"] for u in users} == {"ecology"}
    assert "admin" not in {u["username"] for u in users}


def test_leader_sees_users_of_every_department(client):
    users = client.get("/api/org/users", headers=token_for(client, "leader")).json()
    assert {"admin", "cityadmin", "ecology", "gridworker", "citizen"} <= {u["username"] for u in users}


def test_user_list_never_exposes_password_hashes(client):
    body = client.get("/api/org/users", headers=token_for(client, "admin")).text
    assert "argon2" not in body and "password" not in body


def test_admin_creates_a_user_over_the_api(client, db):
    r = client.post("/api/org/users", json=NEW_USER, headers=token_for(client, "admin"))
    assert r.status_code == 201 and r.json()["department_code"] == "health"
    assert _users_named(db, "apiuser") == 1


@pytest.mark.parametrize("username", ["cityadmin", "CITYADMIN"])
def test_duplicate_username_over_the_api_is_409_and_adds_nobody(client, db, username):
    r = client.post("/api/org/users", json=NEW_USER | {"username": username}, headers=token_for(client, "admin"))
    assert r.status_code == 409 and "already taken" in r.json()["detail"] and r.json()["code"] == "conflict"
    assert _users_named(db, "cityadmin") == 1


def test_staff_cannot_create_users_over_the_api(client, db):
    r = client.post("/api/org/users", json=NEW_USER, headers=token_for(client, "cityadmin"))
    assert r.status_code == 403 and _users_named(db, "apiuser") == 0


def test_a_token_scoped_to_reading_cannot_write(client, db):
    headers = token_for(client, "admin", scopes="org:read")
    assert client.get("/api/org/users", headers=headers).status_code == 200
    r = client.post("/api/org/users", json=NEW_USER, headers=headers)
    assert r.status_code == 403 and "org:write" in r.json()["detail"]
    assert _users_named(db, "apiuser") == 0


def test_malformed_json_body_is_422_with_a_detail(client, db):
    r = client.post("/api/org/users", content=b'{"username": "apiuser", ', headers={
        **token_for(client, "admin"), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"] and r.json()["code"] == "invalid"
    assert _users_named(db, "apiuser") == 0


@pytest.mark.parametrize(("body", "field"), [
    ({k: v for k, v in NEW_USER.items() if k != "password"}, "password"),
    (NEW_USER | {"role": "emperor"}, "role"),
    (NEW_USER | {"username": "x"}, "username"),
    (NEW_USER | {"is_superuser": True}, "is_superuser"),
])
def test_invalid_fields_are_422_naming_the_field(client, db, body, field):
    r = client.post("/api/org/users", json=body, headers=token_for(client, "admin"))
    assert r.status_code == 422 and r.json()["detail"].startswith(f"{field}:")
    assert _users_named(db, "apiuser") == 0


def test_weak_password_over_the_api_is_422_and_adds_nobody(client, db):
    r = client.post("/api/org/users", json=NEW_USER | {"password": "password"}, headers=token_for(client, "admin"))
    assert r.status_code == 422 and "password" in r.json()["detail"]
    assert _users_named(db, "apiuser") == 0


def test_duplicate_department_code_over_the_api_is_409(client, db):
    before = db.scalar(select(func.count()).select_from(Department))
    r = client.post("/api/org/departments", json={"code": "ecology", "name": "重复部门"},
                    headers=token_for(client, "admin"))
    assert r.status_code == 409 and db.scalar(select(func.count()).select_from(Department)) == before


def test_cookie_authenticated_post_without_csrf_header_is_403(client, db):
    sign_in(client, "admin")
    r = client.post("/api/org/users", json=NEW_USER)
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    assert _users_named(db, "apiuser") == 0


def test_cookie_authenticated_post_with_a_wrong_csrf_header_is_403(client, db):
    sign_in(client, "admin")
    r = client.post("/api/org/users", json=NEW_USER, headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403 and _users_named(db, "apiuser") == 0


def test_cookie_authenticated_post_with_the_pages_csrf_header_succeeds(client, db):
    from helpers import csrf_from

    sign_in(client, "admin")
    token = csrf_from(client.get("/admin/users").text)
    r = client.post("/api/org/users", json=NEW_USER, headers={"X-CSRF-Token": token})
    assert r.status_code == 201 and _users_named(db, "apiuser") == 1


def test_bearer_post_needs_no_csrf_token(client, db):
    r = client.post("/api/org/users", json=NEW_USER, headers=token_for(client, "admin"))
    assert r.status_code == 201
