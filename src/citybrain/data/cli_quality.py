"""Placeholder: `citybrain data quality` (work in progress)."""

from __future__ import annotations

import click


@click.command("quality")
def quality_command() -> None:
    raise click.ClickException("not implemented yet")
