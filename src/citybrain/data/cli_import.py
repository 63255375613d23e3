"""Placeholder: `citybrain data import` (work in progress)."""

from __future__ import annotations

import click


@click.command("import")
def import_command() -> None:
    raise click.ClickException("not implemented yet")
