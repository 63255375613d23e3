"""Helpers for the browser tests (tests/e2e): log in through the form, find the demo's database."""

from __future__ import annotations

import pytest


def sign_in_page(page, server, username: str) -> None:  # noqa: ANN001
    """Log ``username`` in through the login form (its password as `citybrain demo` printed it)."""
    page.goto(server.base_url + "/login")
    page.fill("#username", username)
    page.fill("#password", server.accounts[username])
    with page.expect_navigation():
        page.click("button[type=submit].btn-primary")
    if "/login" in page.url:  # the redirect can outrun the session's commit: look again
        page.wait_for_timeout(300)
        page.goto(server.base_url + "/")
    assert "/login" not in page.url, f"{username} could not log in: {page.url}"


def demo_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The SQLAlchemy URL of the demo server's database."""
    found = sorted(tmp_path_factory.getbasetemp().glob("e2e*/citybrain.db"))
    assert found, "the demo server's database was not found"
    return f"sqlite:///{found[-1]}"
