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


def sign_in(client: TestClient, username: str) -> TestClient:
    """Open a browser session for ``username`` without the login form (no argon2 check, so fast).

    For tests about what a logged-in user sees or may do; tests about logging in use ``login``.
    """
    from citybrain.core.auth import SESSION_COOKIE
    from citybrain.org import auth, service

    app = client.app
    with app.state.sessionmaker() as db:
        user = service.get_user_by_username(db, username=username)
        assert user is not None, f"no user {username!r}"
        sess = auth.open_session(db, user=user, ip="testclient", max_age_s=3600)
        db.commit()
        session_id = sess.id
    client.cookies.set(SESSION_COOKIE, app.state.signer.sign(session_id))
    return client


def token_for(client: TestClient, username: str, scopes: str | None = None, days: int = 30) -> dict[str, str]:
    """Bearer headers for a token issued straight through ``org.auth`` (no password flow)."""
    from citybrain.org import auth, service

    with client.app.state.sessionmaker() as db:
        user = service.get_user_by_username(db, username=username)
        assert user is not None, f"no user {username!r}"
        token, _row = auth.issue_token(db, user=user, scopes=scopes, days=days,
                                       actor=auth.actor_for(user, via="session"), name="test")
        db.commit()
    return {"Authorization": f"Bearer {token}"}


QUICK_PASSWORD = "Quick-pass-1"


def quick_user(db, username: str = "quick", role: str = "leader", department_id: int | None = None):  # noqa: ANN001, ANN201
    """A user (password ``QUICK_PASSWORD``) whose argon2 hash uses cheap parameters.

    Verifying it takes about a millisecond instead of ~150 ms, so tests that log in or fail to
    log in many times stay fast; the verification code path is the real one.
    """
    from argon2 import PasswordHasher

    from citybrain.core import clock
    from citybrain.org.models import User

    now = clock.now()
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    user = User(username=username, display_name=username, password_hash=cheap.hash(QUICK_PASSWORD), role=role,
                department_id=department_id, active=True, created_at=now, updated_at=now)
    db.add(user)
    db.commit()
    return user


def run_async(coro, timeout: float = 5.0):  # noqa: ANN001, ANN201
    """Run a coroutine to completion in a fresh thread with its own event loop.

    The browser tests keep Playwright's event loop running in the main thread for the whole
    session, so ``asyncio.run`` cannot be called there directly.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coro, timeout)).result()
