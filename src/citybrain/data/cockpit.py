"""The cockpit's data-quality panel: the district's score and the departments that pull it down.

Imported by the cockpit when present (see ``cockpit.aggregates.OPTIONAL_SOURCES``). Scores are
aggregates over departments; no row value reaches the screen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from citybrain.cockpit import aggregates

from . import quality

LOWEST = 5


def data_quality(db: Session, now: datetime) -> dict[str, Any]:
    scored = [s for s in quality.department_scores(db) if s["score"] is not None]
    if not scored:  # connected, but no quality run yet
        return {"value": None, "unit": "/100", "open_tasks": 0, "items": []}
    rows = sum(max(s["rows"], 1) for s in scored)
    district = sum(s["score"] * max(s["rows"], 1) for s in scored) / rows
    lowest = sorted(scored, key=lambda s: (s["score"], s["department_code"]))[:LOWEST]
    return {"value": round(district, 1), "unit": "/100", "open_tasks": sum(s["open_tasks"] for s in scored),
            "items": [{"name": s["department_name"], "value": s["score"]} for s in lowest]}


PROVIDER = aggregates.PanelProvider(key="data_quality", title=aggregates.N_("Data-pool quality score"),
                                    compute=data_quality)
aggregates.register(PROVIDER)
