"""Fixtures shared by the cockpit tests (event builders live in tests/event_helpers.py)."""

from event_helpers import categories  # noqa: F401
