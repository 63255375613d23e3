"""The ``citybrain`` command."""

from __future__ import annotations

import os
import secrets
import sys
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import click

from citybrain import __version__
from citybrain.config import SettingError, Settings, load_settings


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"citybrain: {message}", err=True)
    sys.exit(code)


def settings_or_exit(*, serving: bool = False, **overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
        if serving:
            settings.check_serving()
        return settings
    except SettingError as exc:
        fail(str(exc))


def _engine(settings: Settings):  # noqa: ANN202
    from citybrain.core.db import make_engine

    if settings.is_sqlite and not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.effective_database_url)


def _migrate(settings: Settings) -> str:
    from sqlalchemy.exc import OperationalError

    from citybrain.core import migrate

    engine = _engine(settings)
    try:
        migrate.upgrade(engine)
        return migrate.current_revision(engine) or "?"
    except OperationalError as exc:
        fail(f"cannot reach the database ({engine.url.render_as_string(hide_password=True)}): "
             f"{str(exc.orig).strip().splitlines()[0]}")
    finally:
        engine.dispose()


def _session(settings: Settings):  # noqa: ANN202
    from citybrain.core.db import make_sessionmaker

    _check_schema(settings)  # one clear line instead of an SQL traceback on a fresh database
    return make_sessionmaker(_engine(settings))()


@click.group(help="citybrain: the district City Brain (城市智慧大脑区级中枢).")
@click.version_option(__version__, prog_name="citybrain", message="%(prog)s %(version)s")
def main() -> None:
    pass


@main.command(help="Print the version.")
def version() -> None:
    click.echo(f"citybrain {__version__}")


@main.command(help="Create or upgrade the database schema to the latest migration.")
def migrate() -> None:
    settings = settings_or_exit()
    rev = _migrate(settings)
    click.echo(f"database at revision {rev}")


@main.command(help="Migrate, then load the shipped departments, geography and catalogs (no demo data).")
@click.option("--with-geography/--without-geography", default=True, show_default=True,
              help="Load the packaged Zhoucun boundary, townships and unit grid.")
def init(with_geography: bool) -> None:
    from citybrain.core.actor import system_actor
    from citybrain.data import databases as data_databases
    from citybrain.demo.district import load_geography
    from citybrain.events import catalog
    from citybrain.geo import places as geo_places
    from citybrain.geo import service as geo_service
    from citybrain.indicators import service as indicators_service
    from citybrain.iot import registry as iot_registry
    from citybrain.org import service as org_service

    settings = settings_or_exit()
    _migrate(settings)
    actor = system_actor("init")
    with _session(settings) as db:
        created = org_service.load_shipped_departments(db, actor=actor)
        loaded = {}
        if with_geography and not geo_service.district_loaded(db):
            loaded = load_geography(db, actor=actor)
        geo_places.load_places(db, actor=actor)
        catalog.sync_catalog(db, actor=actor)
        indicators_service.sync_indicators(db, actor=actor)
        products = iot_registry.sync_products(db, actor=actor)
        resources = data_databases.load_shipped_catalog(db, actor=actor)
        db.commit()
    click.echo(f"departments created: {created}; geography: {loaded or 'already loaded or skipped'}; "
               f"IoT products added: {len(products)}; data catalog resources added: {len(resources)}")


def _serve(settings: Settings) -> None:
    import uvicorn

    from citybrain.app import create_app

    try:
        app = create_app(settings)
    except SettingError as exc:
        fail(str(exc))
    if settings.workers == 1:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
        return
    # Several processes: each worker builds its own app from the environment, so hand every
    # setting down (the demo's generated secret and command-line overrides included).
    for name, value in settings.model_dump().items():
        os.environ[f"CITYBRAIN_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    uvicorn.run("citybrain.app:app_from_environment", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level="warning")


@main.command(help="Serve the platform (migrate first).")
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000).")
def serve(host: str | None, port: int | None) -> None:
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_or_exit(serving=True, **overrides)
    _check_schema(settings)
    click.echo(f"citybrain {__version__} serving at http://{settings.host}:{settings.port}")
    _serve(settings)


def _check_schema(settings: Settings) -> None:
    from citybrain.core import migrate as m

    engine = _engine(settings)
    try:
        current = m.current_revision(engine)
    except Exception as exc:  # noqa: BLE001
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        fail(f"cannot reach the database ({engine.url.render_as_string(hide_password=True)}): "
             f"{reason[0] if reason else type(exc).__name__}")
    finally:
        engine.dispose()
    if current != m.head_revision():
        fail(f"database schema is at {current or 'nothing'}, code needs {m.head_revision()}: run `citybrain migrate`")


def _demo_secret(settings: Settings) -> str:
    """Demo mode keeps a random secret in the data directory so sessions survive restarts."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


@main.command(help="Create and migrate the database if needed, load the Zhoucun demo district, serve.")
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000).")
@click.option("--seed", default=2026, show_default=True, type=int, help="Seed for the synthetic data.")
@click.option("--residents", default=5000, show_default=True, type=click.IntRange(0, 1_000_000))
@click.option("--enterprises", default=800, show_default=True, type=click.IntRange(0, 200_000))
@click.option("--events", "events", default=3000, show_default=True, type=click.IntRange(0, 200_000),
              help="Historical events to generate on the first run (0: none).")
@click.option("--no-serve", is_flag=True, help="Load the demo and exit (for scripts).")
@click.option("--no-live", is_flag=True, help="Do not keep new demo events arriving while serving.")
@click.option("--no-simulate", is_flag=True, help="Do not run the sensor simulator while serving.")
def demo(host: str | None, port: int | None, seed: int, residents: int, enterprises: int, events: int,
         no_serve: bool, no_live: bool, no_simulate: bool) -> None:
    overrides: dict[str, Any] = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_or_exit(demo_mode=True, **overrides)
    settings = settings.model_copy(update={"secret_key": _demo_secret(settings)})
    _migrate(settings)
    from citybrain.core.actor import system_actor
    from citybrain.core.security import verify_password
    from citybrain.demo.district import demo_accounts, load_demo
    from citybrain.org import service as org_service

    click.echo("loading the Zhoucun demo district (the first run takes about 40 s; later runs start at once)…")
    with _session(settings) as db:
        summary = load_demo(db, seed=seed, actor=system_actor("demo"), today=date.today(),
                            residents=residents, enterprises=enterprises, events=events,
                            data_dir=settings.data_dir, quality=True)
        db.commit()
        click.echo("demo accounts (username / password / role):")
        for acc in demo_accounts(seed):
            user = org_service.get_user_by_username(db, username=acc.username)
            same = user is not None and verify_password(user.password_hash, acc.password)
            shown = acc.password if same else "(changed since it was created)"
            click.echo(f"  {acc.username:<11} {shown:<16} {acc.role}")
    loaded = {k: v for k, v in summary.items() if v}
    if loaded:
        click.echo(f"loaded: {loaded}")
    if no_serve:
        return
    click.echo(f"open http://{settings.host}:{settings.port}/ and log in as admin")
    live = None
    if not no_live:
        from citybrain.core.db import make_sessionmaker
        from citybrain.demo.live import LiveEvents

        live = LiveEvents(make_sessionmaker(_engine(settings)), seed=seed).start()
        click.echo("new demo events arrive every 20-60 s (--no-live to turn off)")
    simulator = None
    if not no_simulate:
        # Six times faster than the wall clock: the rainstorm's waterlogging alarm comes within
        # minutes of the start, not half an hour (readings still carry wall-clock timestamps).
        simulator = _simulator(settings, seed=seed, url=None, devices=None, rate=0.0, speed=DEMO_SPEED).start()
        click.echo(f"{len(simulator.devices)} demo sensors stream to {_mqtt_url(settings)}; a rainstorm starts at "
                   "once and floods the first gauges within about 6 minutes (--no-simulate to turn off)")
    try:
        _serve(settings)
    finally:
        if live is not None:
            live.stop()
        if simulator is not None:
            simulator.stop()


def _mqtt_url(settings: Settings) -> str:
    if settings.mqtt_url:
        from citybrain.iot.simulator import parse_url

        host, port, _user, _password = parse_url(settings.mqtt_url)
        return f"mqtt://{host}:{port}"
    return f"mqtt://{settings.mqtt_host}:{settings.mqtt_port}"


DEMO_SPEED = 6.0


def _simulator(settings: Settings, *, seed: int, url: str | None, devices: int | None, rate: float,
               speed: float):  # noqa: ANN202
    from citybrain.demo.iot import registered_sim_devices
    from citybrain.iot.simulator import Simulator

    with _session(settings) as db:
        sim_devices = registered_sim_devices(db, seed, limit=devices)
    if not sim_devices:
        fail(f"no demo devices with secrets from seed {seed}: run `citybrain demo --no-serve --seed {seed}` first")
    try:
        return Simulator(sim_devices, url=url or _mqtt_url(settings), seed=seed, rate=rate, speed=speed)
    except ValueError as exc:
        fail(str(exc))


@main.command(help="Publish realistic readings of the demo sensors over MQTT (QoS 1) until stopped.")
@click.option("--url", default=None, help="Broker, mqtt://host:port (default: the embedded broker from settings).")
@click.option("--devices", default=None, type=click.IntRange(1, 1_000_000), help="Simulate only this many devices.")
@click.option("--rate", default=0.0, show_default=True, type=click.FloatRange(0, 1_000_000),
              help="Messages per second in total (0: each sensor at its natural interval, 1-5 min).")
@click.option("--seed", default=2026, show_default=True, type=int, help="The seed the demo was loaded with.")
@click.option("--duration", default=None, type=click.FloatRange(0.1, None), help="Stop after this many seconds.")
@click.option("--speed", default=1.0, show_default=True, type=click.FloatRange(0.01, 10_000),
              help="Scenario time runs this many times faster than the clock (storms, days).")
def simulate(url: str | None, devices: int | None, rate: float, seed: int, duration: float | None,
             speed: float) -> None:
    import threading

    settings = settings_or_exit()
    sim = _simulator(settings, seed=seed, url=url, devices=devices, rate=rate, speed=speed)
    click.echo(f"simulating {len(sim.devices)} demo devices to mqtt://{sim.host}:{sim.port} (seed {seed}, "
               f"speed {speed:g}x); Ctrl-C to stop")
    done = threading.Event()
    runner = threading.Thread(target=lambda: (sim.run(duration), done.set()), daemon=True)
    runner.start()
    try:
        while not done.wait(30):
            click.echo(sim.stats.line())
    except KeyboardInterrupt:
        sim.stop()
    runner.join(15)
    click.echo(sim.stats.line())
    if sim.stats.published == 0:
        fail(f"nothing was published: is a broker listening at mqtt://{sim.host}:{sim.port}?"
             + (f" (logins refused: {next(iter(sim.stats.refused.values()))})" if sim.stats.refused else ""), 1)


@main.command(help="Run MQTT ingestion workers against the external broker (CITYBRAIN_MQTT_URL).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 32),
              help="Worker processes; they share the subscription.")
@click.option("--stats-file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the workers' combined counters and latency to this JSON file every few seconds.")
def ingest(workers: int, stats_file: Path | None) -> None:
    from citybrain.iot import worker

    settings = settings_or_exit()
    if not settings.mqtt_url:
        fail("citybrain ingest needs CITYBRAIN_MQTT_URL (an external broker); with the embedded broker, "
             "`citybrain serve` ingests by itself")
    _check_schema(settings)
    worker.run(settings, workers=workers, stats_file=stats_file)


@main.group(help="Manage users.")
def user() -> None:
    pass


@user.command("create", help="Create a user.")
@click.option("--username", required=True)
@click.option("--password", required=True, help="At least 8 characters, not only letters or digits.")
@click.option("--role", required=True, type=click.Choice(["admin", "leader", "staff", "grid_worker", "citizen"]))
@click.option("--department", default=None, help="Department code (required for staff and grid_worker).")
@click.option("--display-name", default="")
def user_create(username: str, password: str, role: str, department: str | None, display_name: str) -> None:
    from pydantic import ValidationError

    from citybrain.core.actor import system_actor
    from citybrain.core.errors import DomainError
    from citybrain.org import service as org_service
    from citybrain.org.schemas import UserCreate

    settings = settings_or_exit()
    with _session(settings) as db:
        try:
            data = UserCreate(username=username, password=password, role=role,  # type: ignore[arg-type]
                              department=department, display_name=display_name)
            created = org_service.create_user(db, data=data, actor=system_actor("cli"))
            db.commit()
        except ValidationError as exc:
            err = exc.errors()[0]
            fail(f"invalid {'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
        except DomainError as exc:
            fail(exc.message)
        click.echo(f"created user {created.username} (id {created.id}, role {created.role})")


@user.command("list", help="List users.")
def user_list() -> None:
    from citybrain.core.actor import system_actor
    from citybrain.org import service as org_service

    settings = settings_or_exit()
    with _session(settings) as db:
        users = org_service.list_users(db, actor=system_actor("cli"))
        click.echo(f"{'id':>4}  {'username':<16} {'role':<12} {'department':<14} active")
        for u in users:
            dept = u.department.code if u.department else "-"
            click.echo(f"{u.id:>4}  {u.username:<16} {u.role:<12} {dept:<14} {'yes' if u.active else 'no'}")


@main.group(help="Manage API tokens.")
def token() -> None:
    pass


@token.command("create", help="Issue a bearer token for a user and print it.")
@click.option("--username", required=True)
@click.option("--scopes", default="", help="Space- or comma-separated; default: everything the role allows.")
@click.option("--days", default=30, show_default=True, type=int)
@click.option("--name", default="cli", help="A label to recognise the token later.")
def token_create(username: str, scopes: str, days: int, name: str) -> None:
    from citybrain.core.actor import system_actor
    from citybrain.core.errors import DomainError
    from citybrain.org import auth as org_auth
    from citybrain.org import service as org_service

    settings = settings_or_exit()
    with _session(settings) as db:
        user = org_service.get_user_by_username(db, username=username)
        if user is None:
            fail(f"no user named {username!r}")
        try:
            tok, row = org_auth.issue_token(db, user=user, scopes=scopes or None, days=days,
                                            actor=system_actor("cli"), name=name)
            db.commit()
        except DomainError as exc:
            fail(exc.message)
        click.echo(tok)
        click.echo(f"scopes: {row.scopes}; expires {row.expires_at:%Y-%m-%d %H:%M} UTC", err=True)


@main.group(help="The audit log.")
def audit() -> None:
    pass


@audit.command("verify", help="Check the hash chain; exit 1 naming the first bad row.")
def audit_verify() -> None:
    from citybrain.core import audit as audit_mod

    settings = settings_or_exit()
    with _session(settings) as db:
        result = audit_mod.verify(db)
    if result.ok:
        click.echo(f"audit log intact: {result.checked} entries verified")
        return
    click.echo(f"audit log BROKEN at entry {result.bad_id}: {result.reason} "
               f"({result.checked} entries before it verified)", err=True)
    sys.exit(1)


def _register_domain_groups() -> None:
    from citybrain.data.cli import data_group

    main.add_command(data_group)


_register_domain_groups()


if __name__ == "__main__":
    main()
