"""Writing telemetry fast on both backends, and keeping it: partitions, rollups, retention.

Writes go through the DB-API cursor of the caller's connection (one statement per batch):

- PostgreSQL: ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`` into a table
  range-partitioned by day (UTC) on ``ts``; a day's partition is created the first time a
  reading for it arrives. Retention drops whole partitions.
- SQLite: ``executemany`` of ``INSERT OR IGNORE`` in WAL mode; retention deletes rows.

(device_id, ts) is the primary key, so a reading delivered twice is stored once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from .thingmodel import Product, PropertyType

log = logging.getLogger("citybrain.iot.storage")

DAY_MS = 86_400_000
ROLLUP_PERIODS = (60, 3600)
# Late readings within this many ms of a rollup window are still folded in: each run
# recomputes the buckets of the last LATE_MS before its watermark.
LATE_MS = 5 * 60_000


@dataclass(slots=True)
class Row:
    device_id: int
    ts: int  # epoch ms
    values: dict[str, Any]


@dataclass(slots=True)
class StateRow:
    device_id: int
    ts: int  # newest reading (0: none in this batch)
    values: dict[str, Any]
    last_seen: int
    status: str | None = None


def _device_id(row: Any) -> int:
    return row.device_id if isinstance(row, Row) else row.device.id


def _dumps(values: dict[str, Any]) -> str:
    return orjson.dumps(values).decode()


class Storage:
    """Backend-specific statements; one instance per engine (it remembers created partitions)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._days: set[int] = set()
        self._days_lock = threading.Lock()

    # --- partitions (PostgreSQL) ----------------------------------------------------------

    @staticmethod
    def partition_name(day: int) -> str:
        return "iot_telemetry_p" + datetime.fromtimestamp(day * 86400, UTC).strftime("%Y%m%d")

    def ensure_partitions(self, days: Iterable[int]) -> list[str]:
        """Create day partitions ahead of time (maintenance job, own autocommit connection).

        Never called on the ingestion path: creating a partition locks the parent table, and
        waiting behind a long reader would stall every writer queued after it. A short
        lock_timeout gives up instead (the next run tries again); meanwhile readings go to the
        default partition. A day the default partition already holds readings for is left there.
        Returns the partitions created."""
        if not self.postgres:
            return []
        missing = sorted(set(days) - self._days)
        created: list[str] = []
        if not missing:
            return created
        with self._days_lock, self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("SET lock_timeout = '3s'")
            existing = {name for name, _day in self.partitions(conn)}
            for day in missing:
                name = self.partition_name(day)
                if name in existing:
                    self._days.add(day)
                    continue
                try:
                    conn.exec_driver_sql(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF iot_telemetry "
                        f"FOR VALUES FROM ({day * DAY_MS}) TO ({(day + 1) * DAY_MS})")
                    created.append(name)
                    self._days.add(day)
                except Exception as exc:  # noqa: BLE001 - lock timeout, or rows already in the default
                    log.warning("partition %s not created now: %s", name, str(exc).splitlines()[0])
        return created

    def partitions(self, conn: Connection) -> list[tuple[str, int]]:
        """(name, day) of every telemetry partition, oldest first."""
        if not self.postgres:
            return []
        rows = conn.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'iot_telemetry' ORDER BY c.relname")).all()
        out = []
        for (name,) in rows:
            suffix = name.rsplit("_p", 1)[-1]
            if not (name.startswith("iot_telemetry_p") and suffix.isdigit() and len(suffix) == 8):
                continue  # the default partition
            day = datetime.strptime(suffix, "%Y%m%d").replace(tzinfo=UTC)
            out.append((name, int(day.timestamp()) // 86400))
        return out

    # --- writes -----------------------------------------------------------------------------

    def insert_readings(self, conn: Connection, rows: Sequence[Any]) -> int:
        """Store readings (anything with ``device``/``device_id``, ``ts`` and ``values``); returns
        how many were new (not already stored)."""
        if not rows:
            return 0
        cur = conn.connection.driver_connection.cursor()
        try:
            if self.postgres:
                cur.execute(
                    "INSERT INTO iot_telemetry (device_id, ts, data) "
                    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::json[]) ON CONFLICT DO NOTHING",
                    ([_device_id(r) for r in rows], [r.ts for r in rows], [_dumps(r.values) for r in rows]))
            else:
                cur.executemany("INSERT OR IGNORE INTO iot_telemetry (device_id, ts, data) VALUES (?, ?, ?)",
                                [(_device_id(r), r.ts, _dumps(r.values)) for r in rows])
            return cur.rowcount
        finally:
            cur.close()

    def upsert_states(self, conn: Connection, rows: Sequence[StateRow]) -> None:
        """Merge the newest values into the latest state; older readings never overwrite newer ones."""
        if not rows:
            return
        cur = conn.connection.driver_connection.cursor()
        try:
            if self.postgres:
                cur.execute(
                    "INSERT INTO iot_device_state AS s (device_id, ts, data, last_seen, status) "
                    "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::jsonb[], %s::bigint[], %s::text[]) "
                    "ON CONFLICT (device_id) DO UPDATE SET "
                    "data = CASE WHEN excluded.ts >= s.ts THEN s.data || excluded.data "
                    "ELSE excluded.data || s.data END, "
                    "ts = GREATEST(s.ts, excluded.ts), last_seen = GREATEST(s.last_seen, excluded.last_seen), "
                    "status = COALESCE(excluded.status, s.status)",
                    ([r.device_id for r in rows], [r.ts for r in rows], [_dumps(r.values) for r in rows],
                     [r.last_seen for r in rows], [r.status for r in rows]))
            else:
                cur.executemany(
                    "INSERT INTO iot_device_state (device_id, ts, data, last_seen, status) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (device_id) DO UPDATE SET "
                    "data = CASE WHEN excluded.ts >= iot_device_state.ts "
                    "THEN json_patch(iot_device_state.data, excluded.data) "
                    "ELSE json_patch(excluded.data, iot_device_state.data) END, "
                    "ts = max(iot_device_state.ts, excluded.ts), "
                    "last_seen = max(iot_device_state.last_seen, excluded.last_seen), "
                    "status = coalesce(excluded.status, iot_device_state.status)",
                    [(r.device_id, r.ts, _dumps(r.values), r.last_seen, r.status) for r in rows])
        finally:
            cur.close()

    # --- rollups ------------------------------------------------------------------------------

    def _numeric_expr(self, prop: str, kind: PropertyType) -> str:
        if self.postgres:
            if kind is PropertyType.BOOL:
                return f"CASE (data->>'{prop}') WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 END"
            return f"CAST(data->>'{prop}' AS double precision)"
        return f"CAST(json_extract(data, '$.{prop}') AS REAL)"

    def rollup(self, conn: Connection, products: dict[str, Product], *, now_ms: int) -> int:
        """Recompute 1-min buckets from raw readings and 1-h buckets from 1-min ones, up to the last
        complete minute; returns how many bucket rows were written."""
        written = 0
        marks = dict(conn.execute(text("SELECT period, done_until FROM iot_rollup_mark")).all())
        end = now_ms - now_ms % 60_000
        start = marks.get(60)
        if start is None:
            first = conn.execute(text("SELECT min(ts) FROM iot_telemetry")).scalar()
            start = (first or end) - (first or end) % 60_000
        start = max(0, start - LATE_MS)
        if end > start:
            for product in products.values():
                for prop in product.properties:
                    if prop.type not in (PropertyType.INT, PropertyType.FLOAT, PropertyType.BOOL):
                        continue
                    written += self._rollup_minutes(conn, product.identifier, prop.identifier, prop.type, start, end)
            self._mark(conn, 60, end)
        hour_end = end - end % 3_600_000
        hour_start = marks.get(3600, start - start % 3_600_000)
        hour_start = max(0, hour_start - 3_600_000)
        if hour_end > hour_start:
            written += conn.execute(text(
                "INSERT INTO iot_rollup (device_id, prop, period, bucket, count, sum, min, max) "
                "SELECT device_id, prop, 3600, bucket - bucket % 3600000, sum(count), sum(sum), min(min), max(max) "
                "FROM iot_rollup WHERE period = 60 AND bucket >= :a AND bucket < :b "
                "GROUP BY device_id, prop, bucket - bucket % 3600000 "
                "ON CONFLICT (device_id, prop, period, bucket) DO UPDATE SET count = excluded.count, "
                "sum = excluded.sum, min = excluded.min, max = excluded.max"),
                {"a": hour_start, "b": hour_end}).rowcount
            self._mark(conn, 3600, hour_end)
        return written

    def _rollup_minutes(self, conn: Connection, product: str, prop: str, kind: PropertyType,
                        start: int, end: int) -> int:
        expr = self._numeric_expr(prop, kind)
        sql = (
            "INSERT INTO iot_rollup (device_id, prop, period, bucket, count, sum, min, max) "
            f"SELECT device_id, :prop, 60, b, count(x), sum(x), min(x), max(x) FROM ("
            f"  SELECT t.device_id, t.ts - t.ts % 60000 AS b, {expr} AS x FROM iot_telemetry t"
            "   JOIN iot_device d ON d.id = t.device_id"
            "   WHERE d.product = :product AND t.ts >= :a AND t.ts < :b) r "
            "WHERE x IS NOT NULL GROUP BY device_id, b "
            "ON CONFLICT (device_id, prop, period, bucket) DO UPDATE SET count = excluded.count, "
            "sum = excluded.sum, min = excluded.min, max = excluded.max")
        return conn.execute(text(sql), {"prop": prop, "product": product, "a": start, "b": end}).rowcount

    @staticmethod
    def _mark(conn: Connection, period: int, until: int) -> None:
        conn.execute(text(
            "INSERT INTO iot_rollup_mark (period, done_until) VALUES (:p, :u) "
            "ON CONFLICT (period) DO UPDATE SET done_until = excluded.done_until"), {"p": period, "u": until})

    # --- retention ------------------------------------------------------------------------------

    def apply_retention(self, conn: Connection, products: dict[str, Product], *, now_ms: int) -> dict[str, int]:
        """Drop raw readings older than each product's ``retention_days``; rollups are kept.

        On PostgreSQL a day partition older than every product's retention is dropped whole;
        readings of products with a shorter retention are deleted from the partitions still kept."""
        if not products:
            return {}
        report: dict[str, int] = {}
        longest = max(p.retention_days for p in products.values())
        if self.postgres:
            cutoff_day = (now_ms - longest * DAY_MS) // DAY_MS
            dropped = 0
            conn.exec_driver_sql("SET LOCAL lock_timeout = '3s'")
            for name, day in self.partitions(conn):
                if day < cutoff_day:
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
                    self._days.discard(day)
                    dropped += 1
            report["partitions_dropped"] = dropped
        for product in products.values():
            # Also reaches the default partition and products kept shorter than the longest.
            cutoff = now_ms - product.retention_days * DAY_MS
            count = conn.execute(text(
                "DELETE FROM iot_telemetry WHERE ts < :cutoff AND device_id IN "
                "(SELECT id FROM iot_device WHERE product = :product)"), {"cutoff": cutoff,
                                                                          "product": product.identifier}).rowcount
            if count:
                report[product.identifier] = count
        return report


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
