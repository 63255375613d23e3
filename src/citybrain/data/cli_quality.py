"""``citybrain data quality CODE``: run a resource's quality checks from the command line."""

from __future__ import annotations

import json

import click


@click.command("quality")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON instead of a table.")
def quality_command(code: str, as_json: bool) -> None:
    """Run the quality checks of the catalog entry CODE, store the run and print it.

    Exits 0 when the run was made, whatever it found (failures are data, not errors); 2 when CODE
    is not a catalog entry.
    """
    from citybrain import cli as app_cli
    from citybrain.core.actor import system_actor
    from citybrain.core.errors import NotFound

    from . import catalog, quality

    settings = app_cli.settings_or_exit()
    with app_cli._session(settings) as db:
        try:
            entry = catalog.get_by_code(db, code=code)
        except NotFound as exc:
            app_cli.fail(exc.message)
        qrun = quality.run(db, entry_id=entry.id, actor=system_actor("cli"))
        db.commit()
        out = quality.run_dict(qrun)
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, default=str, indent=2))
        return
    click.echo(f"{code}: {out['rows']} rows, version {out['version']}, {out['seconds']} s")
    click.echo(f"{'rule':<14} {'item':<20} {'checked':>9} {'failed':>9}  sample")
    for r in out["results"]:
        sample = r["skipped"] or (f"#{r['samples'][0]['_id']} {r['samples'][0]['value']!r}: "
                                  f"{r['samples'][0]['reason']}" if r["samples"] else "")
        click.echo(f"{r['kind']:<14} {r['item_code']:<20} {r['checked']:>9} {r['failed']:>9}  {sample}")
    for d in out["disagreements"]:
        click.echo(f"cross-source {d['item_code']} vs {d['source_entry_code']}.{d['source_item_code']}: "
                   f"{d['disagreements']} disagreements of {d['compared']} compared")
    click.echo(f"failed rows (error rules): {out['failed_rows']}; score: {out['score']}")
