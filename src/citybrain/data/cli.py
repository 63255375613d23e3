"""The ``citybrain data`` command group: load files into catalog resources, run quality checks."""

from __future__ import annotations

import click

from . import cli_import, cli_quality


@click.group("data", help="The data resource pool: load department files, run quality checks.")
def data_group() -> None:
    pass


data_group.add_command(cli_import.import_command)
data_group.add_command(cli_quality.quality_command)
