"""Helpers shared by the API and page tests."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

DEMO_SEED = 7


def demo_password(username: str) -> str:
    from citybrain.demo.district import demo_accounts

    return next(a.password for a in demo_accounts(DEMO_SEED) if a.username == username)


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, username: str, password: str) -> TestClient:
    page = client.get("/login")
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": csrf_from(page.text), "next": "/"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text[:500]
    return client


def bearer(client: TestClient, username: str, password: str, scope: str = "") -> dict[str, str]:
    response = client.post("/api/auth/token", data={"username": username, "password": password,
                                                    "grant_type": "password", "scope": scope})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
