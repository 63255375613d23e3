"""`citybrain init`: the production set-up step, run as a real subprocess on a temp SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("citybrain"))


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    env["CITYBRAIN_DATA_DIR"] = str(tmp_path)
    return subprocess.run([CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_init_loads_departments_geography_and_catalog_once_without_accounts(tmp_path):
    first = _run(tmp_path, "init")
    assert first.returncode == 0, first.stderr
    assert "departments created: 26" in first.stdout and "data catalog resources added: 12" in first.stdout
    second = _run(tmp_path, "init")
    assert second.returncode == 0 and "departments created: 0" in second.stdout
    assert "data catalog resources added: 0" in second.stdout
    db = sqlite3.connect(tmp_path / "citybrain.db")
    assert db.execute("select count(*) from division where level='township'").fetchone()[0] == 10
    assert db.execute("select count(*) from grid_cell").fetchone()[0] > 30000
    assert db.execute("select count(*) from event_category").fetchone()[0] > 40
    assert db.execute("select count(*) from user_account").fetchone()[0] == 0
    assert db.execute("select count(*) from resident").fetchone()[0] == 0
    assert db.execute("select count(*) from data_catalog_entry").fetchone()[0] == 12
    assert db.execute("select count(*) from data_load").fetchone()[0] == 0  # schemas, no rows
    created = _run(tmp_path, "user", "create", "--username", "chief", "--password", "S3cure-pass",
                   "--role", "admin", "--department", "bigdata")
    assert created.returncode == 0, created.stderr
