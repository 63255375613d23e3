"""Body-size limit and the per-address limit on anonymous reports."""

from __future__ import annotations

from citybrain.core.limits import RateLimiter
from citybrain.events import catalog
from helpers import csrf_from


def test_rate_limiter_allows_the_limit_then_says_how_long_to_wait() -> None:
    now = [1000.0]
    limiter = RateLimiter(limit=2, window_s=60, clock=lambda: now[0])
    assert limiter.retry_after("a") == 0
    assert limiter.retry_after("a") == 0
    wait = limiter.retry_after("a")
    assert 1 <= wait <= 61
    assert limiter.retry_after("b") == 0  # another address is not affected
    now[0] += 61
    assert limiter.retry_after("a") == 0


def test_a_declared_oversized_body_is_refused_with_413(client, settings) -> None:
    too_big = settings.max_body_mb * 1024 * 1024 + 1
    response = client.post("/api/auth/token", content=b"x", headers={"content-length": str(too_big)})
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_a_streamed_body_over_the_limit_is_refused_with_413(app, client) -> None:
    from citybrain.core.limits import BodySizeLimit

    limit = next(m for m in app.user_middleware if m.cls is BodySizeLimit)
    size = limit.kwargs["max_bytes"] + 10

    def chunks():
        sent = 0
        while sent < size:
            yield b"a" * 65536
            sent += 65536

    response = client.post("/report", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert response.status_code == 413


def test_anonymous_reports_over_the_hourly_limit_get_429_and_store_nothing(client, db, admin_actor, app) -> None:
    from sqlalchemy import func, select

    from citybrain.core.limits import RateLimiter
    from citybrain.events.models import Event

    catalog.sync_catalog(db, actor=admin_actor)
    app.state.public_report_limiter = RateLimiter(limit=1, window_s=3600)
    page = client.get("/report")
    form = {"csrf_token": csrf_from(page.text), "category_code": "E0101", "description": "路边有垃圾",
            "lon": "117.850", "lat": "36.800", "crs": "wgs84"}
    first = client.post("/report", data=form)
    assert first.status_code in (200, 303), first.text[:300]
    before = db.scalar(select(func.count()).select_from(Event))
    second = client.post("/report", data=form)
    assert second.status_code == 429 and "Retry-After" in second.headers
    assert db.scalar(select(func.count()).select_from(Event)) == before
