"""``citybrain data import`` against a temporary SQLite database made by ``citybrain init``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.cli import main
from citybrain.core.db import make_engine
from citybrain.data import storage
from citybrain.data.models import CatalogEntry, DataLoad
from data_factories import make_entry

CODE = "1010100/police-00001"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-import")
    result = CliRunner().invoke(main, ["init", "--without-geography"], env=_env(path), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    engine = make_engine(f"sqlite:///{path / 'var' / 'citybrain.db'}")
    with Session(engine) as db:
        make_entry(db, code=CODE)
        db.commit()
    engine.dispose()
    return path


def _env(path: Path) -> dict[str, str]:
    return {"CITYBRAIN_DATA_DIR": str(path / "var"), "CITYBRAIN_DATABASE_URL": "", "CITYBRAIN_CONFIG": ""}


def run(home: Path, *args: str):  # noqa: ANN201
    return CliRunner().invoke(main, ["data", "import", *args], env=_env(home), catch_exceptions=False)


def state(home: Path) -> tuple[int, int, list[tuple], list[str]]:
    engine = make_engine(f"sqlite:///{home / 'var' / 'citybrain.db'}")
    with Session(engine) as db:
        entry = db.scalar(select(CatalogEntry).where(CatalogEntry.code == CODE))
        table = storage.table_for(entry)
        rows = [tuple(r) for r in db.execute(select(table.c.id_number, table.c.name).order_by(table.c.id_number))]
        loads = list(db.scalars(select(DataLoad.status).where(DataLoad.entry_id == entry.id).order_by(DataLoad.id)))
        result = (entry.version, entry.row_count, rows, loads)
    engine.dispose()
    return result


def test_import_loads_then_a_bad_file_exits_1_and_changes_nothing(home: Path, tmp_path: Path) -> None:
    good = tmp_path / "人口.csv"
    good.write_bytes("公民身份号码,姓名\n370306199001011234,张三\n370306198502023456,李四\n".encode("gb18030"))
    result = run(home, "--dataset", CODE, str(good))
    assert result.exit_code == 0, result.output
    assert f"loaded 人口.csv into {CODE} as version 1 (append, gb18030): 2 rows read, 2 inserted" in result.output
    before = state(home)
    assert before[:2] == (1, 2)

    bad = tmp_path / "bad.csv"
    bad.write_text("公民身份号码,姓名,出生日期\n370306199001019999,王五,2024-13-01\n", encoding="utf-8")
    result = run(home, "--dataset", CODE, "--mode", "replace", str(bad))
    assert result.exit_code == 1
    assert "refused bad.csv" in result.output and "1 × not a real date" in result.output
    assert "row 2 column 出生日期: not a real date ('2024-13-01')" in result.output
    after = state(home)
    assert after[:3] == before[:3] and after[3] == ["loaded", "refused"]


def test_upsert_from_the_command_line_updates_by_key(home: Path, tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("id_number,name\n370306200001010001,甲\n", encoding="utf-8")
    assert run(home, "--dataset", CODE, "--mode", "replace", str(first)).exit_code == 0
    change = tmp_path / "b.csv"
    change.write_text("id_number,name\n370306200001010001,乙\n370306200001010002,丙\n", encoding="utf-8")
    result = run(home, "--dataset", CODE, "--mode", "upsert", str(change))
    assert result.exit_code == 0 and "1 inserted, 1 updated" in result.output
    assert state(home)[2] == [("370306200001010001", "乙"), ("370306200001010002", "丙")]


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "9999999/nobody-00001"], "no catalog entry"),
    (["--dataset", CODE, "--mode", "merge"], "Invalid value for '--mode'"),
    (["--dataset", CODE, "/no/such/file.csv"], "does not exist"),
    ([], "Missing option '--dataset'"),
])
def test_usage_errors_exit_2_and_load_nothing(home: Path, tmp_path: Path, args, message) -> None:
    file = tmp_path / "x.csv"
    file.write_text("id_number,name\n1,甲\n", encoding="utf-8")
    before = state(home)
    if not any(a.endswith(".csv") for a in args):
        args = [*args, str(file)]
    result = CliRunner().invoke(main, ["data", "import", *args], env=_env(home))
    assert result.exit_code == 2
    assert message in result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert state(home) == before
