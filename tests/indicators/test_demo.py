"""The demo's synthetic indicator reports: loaded once, flagged, with PDF evidence."""

from __future__ import annotations

from datetime import date

from citybrain.indicators import service
from citybrain.indicators.demo import load_demo_indicators

from .conftest import evidence_files


def test_demo_reports_are_synthetic_show_every_status_and_load_once(db, tmp_path, frozen_clock, admin_actor):
    summary = load_demo_indicators(db, actor=admin_actor, today=date(2026, 11, 26), data_dir=tmp_path)
    assert summary["indicator_reports"] > 0
    rows = service.progress_summary(db)
    assert {"on_track", "at_risk", "behind", "no_data"} <= {r["status"] for r in rows}
    reported = [r for r in rows if r["latest_value"] is not None and r["source"] == "reported"]
    assert reported and all(r["synthetic"] for r in reported)
    files = evidence_files(tmp_path)
    assert files and all(f.read_bytes().startswith(b"%PDF") for f in files)
    again = load_demo_indicators(db, actor=admin_actor, today=date(2026, 11, 26), data_dir=tmp_path)
    assert again["indicator_reports"] == 0


def test_without_a_data_directory_only_the_table_is_loaded(db, frozen_clock, admin_actor):
    summary = load_demo_indicators(db, actor=admin_actor, today=date(2026, 11, 26), data_dir=None)
    assert summary == {"indicators": 0, "indicator_reports": 0}
    assert service.count_reports(db) == 0
