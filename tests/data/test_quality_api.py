"""The /api/data quality routes, and `citybrain data quality` against a temporary SQLite database."""

from __future__ import annotations

import json
from datetime import date

from click.testing import CliRunner
from sqlalchemy import func, insert, select

from citybrain.data import identifiers as ids
from citybrain.data import storage
from citybrain.data.models import QualityRule
from data_factories import make_entry
from helpers import token_for

GOOD = ids.make_id_number("370306", date(1990, 1, 2), 7)


def ecology_entry(client):
    with client.app.state.sessionmaker() as db:
        entry = make_entry(db, code="3050100/ecology-00001", department="ecology", class_kind="department",
                           class_code="3-05-001")
        db.execute(insert(storage.table_for(entry)), [
            {"_load": 1, "id_number": GOOD, "name": "甲"}, {"_load": 1, "id_number": GOOD[:17] + "x", "name": None}])
        entry.row_count, entry.version = 2, 1
        db.commit()
        return entry.id


def test_staff_declare_rules_run_them_and_everyone_with_data_read_sees_the_trend(client, db) -> None:
    entry_id = ecology_entry(client)
    staff, leader = token_for(client, "ecology"), token_for(client, "leader")
    base = f"/api/data/entries/{entry_id}"
    r = client.post(f"{base}/rules", json={"item_code": "id_number", "kind": "id_number"}, headers=staff)
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    assert client.post(f"{base}/rules", json={"item_code": "name", "kind": "not_null", "severity": "warning"},
                       headers=staff).status_code == 201
    run = client.post(f"{base}/quality-runs", headers=staff)
    assert run.status_code == 201, run.text
    body = run.json()
    assert (body["rows"], body["failed_rows"], body["score"]) == (2, 1, 50.0)
    assert body["results"][0]["samples"][0]["reason"] == "check character must be an upper-case X"
    assert [x["id"] for x in client.get(f"{base}/quality-runs", headers=leader).json()] == [body["id"]]
    assert client.get(f"/api/data/quality-runs/{body['id']}", headers=leader).json()["results"]
    tasks = client.get("/api/data/quality/tasks?status=open", headers=leader).json()
    assert [t["entry_id"] for t in tasks] == [entry_id]
    depts = client.get("/api/data/quality/departments", headers=leader).json()
    assert [d["score"] for d in depts if d["department_code"] == "ecology"] == [50.0]
    assert client.delete(f"/api/data/rules/{rule_id}", headers=staff).status_code == 204
    assert len(client.get(f"{base}/rules", headers=leader).json()) == 1


def test_refusals_change_nothing(client, db) -> None:
    entry_id = ecology_entry(client)
    before = db.scalar(select(func.count()).select_from(QualityRule))
    base = f"/api/data/entries/{entry_id}"
    other, leader, citizen = token_for(client, "cityadmin"), token_for(client, "leader"), token_for(client, "citizen")
    rule = {"item_code": "name", "kind": "not_null"}
    assert client.post(f"{base}/rules", json=rule, headers=other).status_code == 403
    assert client.post(f"{base}/rules", json=rule, headers=leader).status_code == 403
    assert client.get(f"{base}/rules", headers=citizen).status_code == 403
    assert client.post(f"{base}/quality-runs", headers=other).status_code == 403
    bad = client.post(f"{base}/rules", json={"item_code": "name", "kind": "regex", "params": {"pattern": "(("}},
                      headers=token_for(client, "ecology"))
    assert bad.status_code == 422 and "does not compile" in bad.text
    assert client.post(f"{base}/rules", json={"item_code": "name", "kind": "nope"},
                       headers=token_for(client, "admin")).status_code == 422
    assert client.get("/api/data/quality-runs/999999", headers=leader).status_code == 404
    assert client.get("/api/data/quality/tasks?status=maybe", headers=leader).status_code == 422
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(QualityRule)) == before


def test_the_cli_runs_a_resource_and_prints_a_table_or_json(tmp_path, monkeypatch) -> None:
    from sqlalchemy.orm import Session

    from citybrain.cli import main
    from citybrain.core.actor import system_actor
    from citybrain.core.db import make_engine
    from citybrain.data import quality

    for key in [k for k in __import__("os").environ if k.startswith("CITYBRAIN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CITYBRAIN_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--without-geography"]).exit_code == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'citybrain.db'}")
    with Session(engine) as db:
        entry = make_entry(db)
        db.execute(insert(storage.table_for(entry)), [{"_load": 1, "id_number": GOOD, "name": "甲"},
                                                      {"_load": 1, "id_number": "370306900102007", "name": "乙"}])
        quality.add_rule(db, entry_id=entry.id, item_code="id_number", kind="id_number", actor=system_actor("t"))
        db.commit()
    engine.dispose()
    table = runner.invoke(main, ["data", "quality", "1010100/police-00001"])
    assert table.exit_code == 0, table.output
    assert "legacy 15-digit" in table.output and "score: 50.0" in table.output
    as_json = runner.invoke(main, ["data", "quality", "1010100/police-00001", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output)["failed_rows"] == 1
    unknown = runner.invoke(main, ["data", "quality", "nope/none"])
    assert unknown.exit_code == 2 and "no catalog entry" in unknown.output
