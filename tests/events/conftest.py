"""Fixtures shared by the event tests (builders live in tests/event_helpers.py)."""

from event_helpers import categories  # noqa: F401
