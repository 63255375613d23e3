from __future__ import annotations

from helpers import bearer, demo_password, login


def test_password_flow_gives_a_token_that_reads_me(client):
    headers = bearer(client, "admin", demo_password("admin"))
    me = client.get("/api/org/me", headers=headers).json()
    assert me["username"] == "admin" and "org:write" in me["permissions"] and me["via"] == "token"


def test_wrong_password_is_refused_without_a_token(client):
    r = client.post("/api/auth/token", data={"username": "admin", "password": "nope-nope-1"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_session_cookie_is_httponly_and_samesite(client):
    page = client.get("/login")
    from helpers import csrf_from

    r = client.post("/login", data={"username": "admin", "password": demo_password("admin"),
                                    "csrf_token": csrf_from(page.text)}, follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_login_page_then_departments_list(client):
    login(client, "admin", demo_password("admin"))
    r = client.get("/api/org/departments")
    assert r.status_code == 200
    names = {d["name"] for d in r.json()}
    assert "区大数据局" in names and "丝绸路街道办事处" in names
