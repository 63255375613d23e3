"""``citybrain data import``: load a department's CSV or XLSX file into a catalog resource."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

SHOWN_ERRORS = 10


@click.command("import", help="Load a CSV or XLSX file into a catalog resource: all rows or none.")
@click.option("--dataset", "dataset", required=True, metavar="CODE",
              help="The catalog entry's code (e.g. 1010100/police-00001), CKAN name, or package/resource id.")
@click.option("--mode", type=click.Choice(["append", "replace", "upsert"]), default="append", show_default=True,
              help="append new rows, replace all rows, or upsert (update by the entry's key fields, else insert).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
def import_command(dataset: str, mode: str, file: Path) -> None:
    from citybrain import cli as app_cli
    from citybrain.core.actor import system_actor
    from citybrain.core.errors import DomainError

    from . import catalog, loading

    settings = app_cli.settings_or_exit()
    with app_cli._session(settings) as db:
        try:
            entry = catalog.find(db, ref=dataset)
            load = loading.load_file(db, entry_id=entry.id, data=file, filename=file.name, mode=mode,
                                     actor=system_actor("cli"), max_bytes=settings.data_max_upload_mb * 1024 * 1024)
        except DomainError as exc:
            app_cli.fail(exc.message)
        db.commit()
        code = entry.code
    _print_summary(code, load)
    if load.status != "loaded":
        sys.exit(1)


def _print_summary(code: str, load: Any) -> None:
    report = load.report
    speed = f", {report['rows_per_second']:,} rows/s" if report.get("rows_per_second") else ""
    encoding = f", {load.encoding}" if load.encoding else ""
    if load.status == "loaded":
        click.echo(f"loaded {load.filename} into {code} as version {load.version} ({load.mode}{encoding}): "
                   f"{load.rows_read} rows read, {load.rows_inserted} inserted, {load.rows_updated} updated, "
                   f"{load.rows_deleted} deleted in {report['seconds']} s{speed}")
    else:
        click.echo(f"refused {load.filename} for {code} ({load.mode}{encoding}): nothing was changed; "
                   f"{load.rows_read} rows read, {report['errors_total']} errors (load {load.id})")
    for problem in report["problems"]:
        click.echo(f"  problem: {problem}")
    for reason, count in sorted(report["error_counts"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {count} × {reason}")
    for error in report["errors"][:SHOWN_ERRORS]:
        column = f" column {error['column']}" if error.get("column") else ""
        click.echo(f"  row {error['row']}{column}: {error['reason']} ({error['value']!r})")
    if report["warnings_total"]:
        click.echo(f"  warnings: {report['warnings_total']} "
                   f"({', '.join(f'{n} × {r}' for r, n in report['warning_counts'].items())})")
