from __future__ import annotations

from helpers import demo_password


def test_healthz_and_readyz_answer_without_login(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok" and ready["database"] in {"sqlite", "postgresql"}


def test_metrics_label_requests_by_full_route_template(client):
    client.get("/api/geo/grids/3703060010000001")
    client.get("/api/geo/grids/3703060010000002")
    text = client.get("/metrics").text
    assert 'route="/api/geo/grids/{code}",status="401"} 2.0' in text
    assert "3703060010000001" not in text


def test_metrics_count_login_outcomes(client):
    client.post("/api/auth/token", data={"username": "admin", "password": "wrong-password-1"})
    client.post("/api/auth/token", data={"username": "admin", "password": demo_password("admin")})
    text = client.get("/metrics").text
    assert 'citybrain_login_attempts_total{outcome="failed"} 1.0' in text
    assert 'citybrain_login_attempts_total{outcome="ok"} 1.0' in text


def test_docs_page_loads_swagger_from_local_files(client):
    html = client.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
