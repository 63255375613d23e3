"""The docs are tested like code: every setting, CLI command and option, permission and API
route appears in docs/, and the facts the docs state from tables in the code still hold."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import click
import pytest
from sqlalchemy import create_engine

from citybrain.cli import main
from citybrain.config import Settings
from citybrain.core.permissions import PERMISSIONS, ROLE_PERMISSIONS, Role

DOCS = Path(__file__).resolve().parents[1] / "docs"
DEMO_SEED = 2026  # the default of `citybrain demo --seed`, whose output the docs show


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "citybrain") -> list[tuple[str, click.Command]]:
    """Every command and subcommand under ``group``, as its full command line."""
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found += commands(command, path)
    return found


def cli_section(command_line: str) -> str:
    """The part of docs/cli.md under the heading ``## `citybrain …` ``."""
    text = doc("cli.md")
    match = re.search(rf"^## `{re.escape(command_line)}`\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/cli.md has no section '## `{command_line}`'"
    return match.group(1)


def test_index_links_every_page():
    index = doc("index.md")
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md")
    assert [p for p in pages if f"({p})" not in index] == []


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(name):
    text = doc("configuration.md")
    variable = f"CITYBRAIN_{name.upper()}"
    rows = [line for line in text.splitlines() if line.startswith(f"| `{variable}` |")]
    assert rows, f"{variable} has no row in the settings table of docs/configuration.md"
    assert f"`{name}`" in rows[0], f"the row of {variable} does not give its TOML key {name!r}"
    default = Settings.model_fields[name].default
    shown = "empty" if default == "" else f"`{str(default).lower() if isinstance(default, bool) else default}`"
    assert shown in rows[0], f"the row of {variable} does not show its default {shown}"


COMMANDS = dict(commands(main))


@pytest.mark.parametrize("command_line", sorted(COMMANDS))
def test_every_cli_command_and_option_is_documented(command_line):
    command = COMMANDS[command_line]
    assert f"`{command_line}" in doc("cli.md")
    if isinstance(command, click.Group):
        return
    section = cli_section(command_line)
    options = [opt for p in command.params if isinstance(p, click.Option) for opt in p.opts]
    assert [opt for opt in options if f"`{opt}`" not in section] == []


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_every_permission_is_in_the_architecture_table_with_its_roles(permission):
    text = doc("architecture.md")
    rows = [line for line in text.splitlines() if line.startswith(f"| `{permission}` |")]
    assert rows, f"{permission} has no row in the permission table of docs/architecture.md"
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    header = next(line for line in text.splitlines() if line.startswith("| permission |"))
    roles = [c.strip() for c in header.strip("|").split("|")][2:]
    assert sorted(roles) == sorted(r.value for r in Role)
    documented = {role for role, mark in zip(roles, cells[2:], strict=True) if mark == "✓"}
    actual = {role.value for role, perms in ROLE_PERMISSIONS.items() if permission in perms}
    assert documented == actual


def _api_paths() -> list[str]:
    from citybrain.app import create_app

    settings = Settings(secret_key=secrets.token_urlsafe(40), log_level="WARNING", log_format="text")
    app = create_app(settings, engine=create_engine("sqlite://"))
    return sorted(p for p in app.openapi()["paths"] if p.startswith("/api/") or p == "/api")


@pytest.mark.parametrize("path", _api_paths())
def test_every_api_route_is_documented(path):
    assert f"`{path}`" in doc("api.md")


def test_operations_routes_are_documented():
    text = doc("api.md")
    for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
        assert f"GET {path}" in text


def test_demo_accounts_and_passwords_shown_are_the_real_ones():
    from citybrain.demo.district import demo_accounts

    accounts = demo_accounts(DEMO_SEED)
    started = doc("getting-started.md")
    assert [a.username for a in accounts if f"`{a.username}`" not in started] == []
    real = {a.password for a in accounts}
    for name in ("getting-started.md", "api.md", "cli.md"):
        shown = set(re.findall(r"Zc-[0-9a-f]{10}", doc(name)))
        assert shown <= real, f"docs/{name} shows demo passwords that `citybrain demo` does not print"
