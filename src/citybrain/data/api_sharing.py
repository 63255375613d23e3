"""Placeholder: filled in by the data pool work in progress."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
