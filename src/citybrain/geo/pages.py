"""The district map page (drawn in the browser from the GeoJSON endpoints)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/map")
def map_page(request: Request, actor: Annotated[Actor, Depends(page_require("geo:read"))]) -> Response:
    return render(request, "geo/map.html", {}, actor=actor)
