"""The real ``citybrain`` command, run as a subprocess against a temporary SQLite database."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citybrain import __version__
from citybrain.core import migrate as migrations

CLI = Path(sys.executable).with_name("citybrain")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()


@dataclass
class Home:
    """A working directory with its own data directory, as an operator would have."""

    path: Path

    @property
    def db_file(self) -> Path:
        return self.path / "var" / "citybrain.db"

    def run(self, *args: str, **env: str) -> Run:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
        base["CITYBRAIN_DATA_DIR"] = str(self.path / "var")
        proc = subprocess.run([str(CLI), *args], cwd=self.path, env=base | env, capture_output=True,
                              text=True, timeout=120)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def sql(self, statement: str) -> list[tuple]:
        with sqlite3.connect(self.db_file) as conn:
            return conn.execute(statement).fetchall()


def _home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Home:
    home = Home(tmp_path_factory.mktemp(name))
    assert not (home.path / "citybrain.toml").exists()
    return home


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """Migrated once, with one user, shared by the tests that only read or add distinct rows."""
    home = _home(tmp_path_factory, "cli")
    assert home.run("migrate").code == 0
    assert home.run("user", "create", "--username", "alice", "--password", "Alice-pass-1",
                    "--role", "leader").code == 0
    return home


@pytest.fixture
def copy_of_home(home: Home, tmp_path: Path) -> Iterator[Home]:
    """A private copy of the shared database, for tests that damage it."""
    copy = Home(tmp_path)
    copy.db_file.parent.mkdir()
    with sqlite3.connect(home.db_file) as src, sqlite3.connect(copy.db_file) as dst:
        src.backup(dst)
    yield copy


def test_version_prints_the_package_version(tmp_path):
    run = Home(tmp_path).run("version")
    assert (run.code, run.out.strip()) == (0, f"citybrain {__version__}")


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path_factory):
    home = _home(tmp_path_factory, "migrate")
    first, second = home.run("migrate"), home.run("migrate")
    head = migrations.head_revision()
    assert first.code == second.code == 0
    assert first.out.strip() == second.out.strip() == f"database at revision {head}"
    assert home.sql("SELECT version_num FROM alembic_version") == [(head,)]


@pytest.mark.parametrize("args", [("user", "list"), ("token", "create", "--username", "alice")])
def test_commands_on_an_unmigrated_database_say_to_migrate_in_one_line(tmp_path, args):
    run = Home(tmp_path).run(*args)
    assert run.code != 0 and len(run.err_lines) == 1 and "citybrain migrate" in run.err


def test_user_create_then_list_shows_the_user(home):
    run = home.run("user", "create", "--username", "bob", "--password", "Bob-pass-12", "--role", "citizen",
                   "--display-name", "Bob")
    assert run.code == 0 and re.fullmatch(r"created user bob \(id \d+, role citizen\)", run.out.strip())
    listed = home.run("user", "list")
    assert listed.code == 0
    rows = [line.split() for line in listed.out.splitlines()[1:]]
    assert ["bob", "citizen", "-", "yes"] in [r[1:] for r in rows]
    assert ["alice", "leader", "-", "yes"] in [r[1:] for r in rows]


@pytest.mark.parametrize("username", ["ALICE"])
def test_duplicate_username_fails_with_one_line_and_adds_nobody(home, username):
    run = home.run("user", "create", "--username", username, "--password", "Other-pass-1", "--role", "citizen")
    assert run.code != 0 and run.out == ""
    assert run.err_lines == ["citybrain: username '" + username + "' is already taken"]
    assert home.sql("SELECT count(*) FROM user_account WHERE lower(username) = 'alice'") == [(1,)]


@pytest.mark.parametrize(("extra", "message"), [
    (("--password", "short1", "--role", "citizen"), "at least 8"),
    (("--password", "Valid-pass-1", "--role", "staff"), "needs a department"),
    (("--password", "Valid-pass-1", "--role", "staff", "--department", "nowhere"), "nowhere"),
])
def test_bad_user_input_fails_with_one_line_and_adds_nobody(home, extra, message):
    run = home.run("user", "create", "--username", "carol", *extra)
    assert run.code != 0 and len(run.err_lines) == 1 and message in run.err
    assert home.sql("SELECT count(*) FROM user_account WHERE username = 'carol'") == [(0,)]


def test_an_unknown_role_is_refused_and_adds_nobody(home):
    run = home.run("user", "create", "--username", "dave", "--password", "Dave-pass-1", "--role", "emperor")
    assert run.code != 0 and "--role" in run.err and "emperor" in run.err
    assert home.sql("SELECT count(*) FROM user_account WHERE username = 'dave'") == [(0,)]


def test_token_create_prints_a_working_bearer_token(home, tmp_path):
    run = home.run("token", "create", "--username", "alice", "--scopes", "geo:read org:read", "--days", "7")
    assert run.code == 0
    token = run.out.strip()
    assert re.fullmatch(r"cbt_[0-9a-f]{12}_[\w-]+", token)
    assert "geo:read org:read" in run.err and "expires" in run.err
    assert token.split("_", 2)[2] not in str(home.sql("SELECT secret_hash FROM api_token"))

    from fastapi.testclient import TestClient

    from citybrain.app import create_app
    from citybrain.config import Settings

    app = create_app(Settings(data_dir=home.path / "var", secret_key="t" * 40, log_format="text"))
    with TestClient(app) as client:
        me = client.get("/api/org/me", headers={"Authorization": f"Bearer {token}"})
    app.state.engine.dispose()
    assert me.status_code == 200 and me.json()["username"] == "alice"
    assert set(me.json()["permissions"]) == {"geo:read", "org:read"}


@pytest.mark.parametrize(("args", "message"), [
    (("--username", "alice", "--scopes", "geo:read bogus:scope"), "unknown scope(s): bogus:scope"),
    (("--username", "alice", "--scopes", "org:write"), "may not hold scope(s): org:write"),
    (("--username", "nobody"), "no user named 'nobody'"),
])
def test_token_create_refuses_bad_input_in_one_line(home, args, message):
    before = home.sql("SELECT count(*) FROM api_token")
    run = home.run("token", "create", *args)
    assert run.code != 0 and run.out == "" and len(run.err_lines) == 1 and message in run.err
    assert home.sql("SELECT count(*) FROM api_token") == before


def test_audit_verify_passes_on_an_intact_log(home):
    run = home.run("audit", "verify")
    assert run.code == 0 and re.fullmatch(r"audit log intact: \d+ entries verified", run.out.strip())


def test_audit_verify_fails_naming_an_edited_entry(copy_of_home):
    copy_of_home.sql("UPDATE audit_log SET after = '{\"username\": \"mallory\"}' WHERE id = 1")
    run = copy_of_home.run("audit", "verify")
    assert run.code == 1 and "entry 1" in run.err and "edited" in run.err


def test_audit_verify_fails_naming_a_deleted_entry(copy_of_home):
    last = copy_of_home.sql("SELECT max(id) FROM audit_log")[0][0]
    assert last >= 2
    copy_of_home.sql(f"DELETE FROM audit_log WHERE id = {last}")
    run = copy_of_home.run("audit", "verify")
    assert run.code == 1 and f"entry {last}" in run.err


@pytest.mark.parametrize(("env", "command"), [
    ({"CITYBRAIN_PORT": "abc"}, ("migrate",)),
    ({"CITYBRAIN_DATABASE_URL": "mysql://x"}, ("migrate",)),
    ({"CITYBRAIN_LOG_LEVEL": "LOUD"}, ("user", "list")),
    ({"CITYBRAIN_SECRET_KEY": "short"}, ("audit", "verify")),
])
def test_a_bad_setting_stops_with_one_line_naming_it(tmp_path, env, command):
    home = Home(tmp_path)
    run = home.run(*command, **env)
    [setting] = env
    assert run.code != 0 and run.out == ""
    assert len(run.err_lines) == 1 and setting in run.err_lines[0]
    assert not home.db_file.exists()


def test_a_bad_value_in_citybrain_toml_stops_with_one_line_naming_it(tmp_path):
    home = Home(tmp_path)
    (tmp_path / "citybrain.toml").write_text('port = "eighty"\n', encoding="utf-8")
    run = home.run("migrate")
    assert run.code != 0 and len(run.err_lines) == 1 and "CITYBRAIN_PORT" in run.err


def test_serve_without_a_secret_key_refuses_naming_it(home):
    run = home.run("serve", "--port", "1")
    assert run.code != 0 and "serving" not in run.out
    assert len(run.err_lines) == 1 and "CITYBRAIN_SECRET_KEY" in run.err


def test_serve_with_a_bad_port_option_refuses(home):
    run = home.run("serve", "--port", "99999", CITYBRAIN_SECRET_KEY="s" * 40)
    assert run.code != 0 and "CITYBRAIN_PORT" in run.err and "serving" not in run.out


def test_serve_on_an_unmigrated_database_says_to_migrate(tmp_path):
    run = Home(tmp_path).run("serve", CITYBRAIN_SECRET_KEY="s" * 40)
    assert run.code != 0 and len(run.err_lines) == 1 and "citybrain migrate" in run.err
