"""The IoT hub inside a running citybrain: who starts what.

``IotRuntime`` is ``app.state.iot``. It always has the ``DeviceDirectory`` and the ``Ingestor``
(HTTP ingestion and NGSI-LD upserts use them). With ``CITYBRAIN_INGEST_ENABLED`` (the default
for ``serve``) it also runs:

- the embedded MQTT endpoint (``broker.EmbeddedBroker``, which ingests what devices publish)
  unless ``CITYBRAIN_MQTT_URL`` names an external broker; then one MQTT ingestion worker
  (``consumer.Consumer``) on it — more run as ``citybrain ingest``;
- the outbox relay thread (alarms → events) and the maintenance thread: no-data rules every
  30 s, rollups every minute, retention and partitions every hour.

Without it (tests, tools) the outbox is relayed inline after each ingested batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from citybrain.config import Settings
from citybrain.core import bus, clock, outbox

from .consumer import BrokerAddress, Consumer
from .ingest import Ingestor
from .registry import DeviceDirectory
from .storage import DAY_MS, Storage

log = logging.getLogger("citybrain.iot")

ROLLUP_EVERY_S = 60
RETENTION_EVERY_S = 3600
TICK_EVERY_S = 30
CHANGED_EVERY_S = 1.0
IOT_CHANGED = "iot.changed"


class IotRuntime:
    def __init__(self, settings: Settings, session_factory: Callable[[], Session]) -> None:
        self.settings = settings
        self._sf = session_factory
        self.directory = DeviceDirectory(session_factory)
        self.relay: outbox.Relay | None = None
        self.ingestor = Ingestor(session_factory, self.directory,
                                 max_payload_bytes=settings.iot_max_payload_kb * 1024,
                                 max_future_s=settings.iot_max_future_s, on_commit=self._after_commit)
        self.broker = None
        self.consumer: Consumer | None = None
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None
        self.listeners: list[Callable[[], None]] = []  # called after each committed batch (live pages)
        self._last_changed = 0.0
        self._changed_lock = threading.Lock()
        self._changed_timer: threading.Timer | None = None

    def _after_commit(self) -> None:
        if self.relay is not None:
            self.relay.poke()
        else:
            outbox.relay_once(self._sf)
        self._announce_changed()

    def _announce_changed(self) -> None:
        """Publish ``iot.changed`` (the cockpit recomputes its IoT panels on it) at most once a
        second; a change inside the quiet second is announced when that second ends."""
        with self._changed_lock:
            wait = self._last_changed + CHANGED_EVERY_S - time.monotonic()
            if wait > 0:
                if self._changed_timer is None:
                    self._changed_timer = threading.Timer(wait, self._announce_trailing)
                    self._changed_timer.daemon = True
                    self._changed_timer.start()
                return
            self._last_changed = time.monotonic()
        bus.publish(IOT_CHANGED, {})

    def _announce_trailing(self) -> None:
        with self._changed_lock:
            self._changed_timer = None
        self._announce_changed()
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a page listener must not break ingestion
                log.exception("IoT commit listener failed")

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.settings.ingest_enabled:
            return
        self.relay = outbox.Relay(self._sf)
        self.relay.start()
        if self.settings.mqtt_url:
            group = self.settings.mqtt_share_group
            self.consumer = Consumer(self.ingestor, BrokerAddress.parse(self.settings.mqtt_url),
                                     client_id=f"citybrain-{group}-serve", share_group=group)
            self.consumer.start(wait_s=5)
        else:
            from .broker import EmbeddedBroker

            # Devices connect to citybrain itself; it ingests their messages directly.
            self.broker = EmbeddedBroker(self.settings, self.directory, self.ingestor)
            self.broker.start()
        self._maintenance = threading.Thread(target=self._maintain, name="citybrain-iot-maintenance", daemon=True)
        self._maintenance.start()

    def stop(self) -> None:
        self._stop.set()
        if self.consumer is not None:
            self.consumer.stop()
        if self.broker is not None:
            self.broker.stop()
        if self._maintenance is not None:
            self._maintenance.join(timeout=10)
        if self.relay is not None:
            self.relay.stop()

    # --- maintenance ------------------------------------------------------------------------------

    def _maintain(self) -> None:
        last_rollup = last_retention = 0.0
        while not self._stop.wait(TICK_EVERY_S if last_rollup else 2):
            now = time.monotonic()
            try:
                self.ingestor.tick()
                if now - last_rollup >= ROLLUP_EVERY_S:
                    last_rollup = now
                    self.run_rollups()
                if now - last_retention >= RETENTION_EVERY_S:
                    last_retention = now
                    self.run_retention()
            except Exception:  # noqa: BLE001 - maintenance must survive a database hiccup
                log.exception("IoT maintenance round failed")

    def run_rollups(self) -> int:
        db = self._sf()
        try:
            written = Storage(db.get_bind().engine).rollup(db.connection(), self.directory.products,
                                                           now_ms=int(clock.now().timestamp() * 1000))
            db.commit()
            return written
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    def run_retention(self) -> dict[str, int]:
        db = self._sf()
        try:
            storage = Storage(db.get_bind().engine)
            now_ms = int(clock.now().timestamp() * 1000)
            # Days ahead only: today's readings may already sit in the default partition.
            storage.ensure_partitions({now_ms // DAY_MS + d for d in (1, 2)})
            report = storage.apply_retention(db.connection(), self.directory.products, now_ms=now_ms)
            db.commit()
            if any(report.values()):
                log.info("IoT retention: %s", report)
            return report
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()


class IngestCollector:
    """Prometheus view of the ingestor's counters (registered on the app's metrics registry)."""

    def __init__(self, runtime: IotRuntime) -> None:
        self.runtime = runtime

    def collect(self):  # noqa: ANN201 - prometheus_client collector protocol
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self.runtime.ingestor.stats.snapshot()
        yield CounterMetricFamily("citybrain_iot_messages", "Device messages received (MQTT, HTTP, NGSI-LD)",
                                  value=snap["messages"])
        yield CounterMetricFamily("citybrain_iot_readings", "Readings that passed their thing model",
                                  value=snap["readings"])
        yield CounterMetricFamily("citybrain_iot_readings_stored", "Readings newly stored (redeliveries excluded)",
                                  value=snap["stored"])
        refused = CounterMetricFamily("citybrain_iot_refused", "Messages or readings refused, by reason code",
                                      labels=["code"])
        for code, count in sorted(snap["refused"].items()):
            refused.add_metric([code], count)
        yield refused
        latency = GaugeMetricFamily("citybrain_iot_ingest_latency_ms",
                                    "Reading timestamp to commit, recent readings", labels=["quantile"])
        for q, key in (("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms")):
            if snap[key] is not None:
                latency.add_metric([q], snap[key])
        yield latency
