"""Placeholder: the CKAN-compatible read API (mounted at /api/3/action and /api/action)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
