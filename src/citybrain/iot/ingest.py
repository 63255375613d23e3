"""Ingestion: raw device messages in, validated readings stored, rules evaluated, alarms raised.

Every transport (MQTT, HTTP, NGSI-LD upsert) hands ``Message``s to ``Ingestor.process``, which
handles a whole batch in one database transaction:

1. route: parse the topic (``citybrain/{product}/{device}/telemetry|event|status``, or
   ``citybrain/gateway/{gateway}/telemetry`` for a gateway's batch), find the device in the
   ``DeviceDirectory`` and refuse unknown, disabled or mismatching devices;
2. check each reading against the product's thing model (``payload.validate_telemetry``);
3. store: readings into ``iot_telemetry`` (a (device, ts) already stored is skipped, so a
   redelivered message is stored once), the newest values merged into ``iot_device_state``,
   refused messages into ``iot_dead_letter`` with their reason (counted in /metrics);
4. evaluate the alarm rules on the accepted readings; alarm changes are written to
   ``iot_alarm`` and, for dispatching rules, to the outbox — in the same transaction.

Only after the commit does the transport acknowledge the messages (MQTT PUBACK, HTTP 200).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOPIC_ROOT = "citybrain"
GATEWAY_SEGMENT = "gateway"
KINDS = ("telemetry", "event", "status")


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    received_ms: int  # epoch ms when the transport received it
    source: str = "mqtt"  # mqtt | http | ngsi
    # The device the transport already authenticated (HTTP key+secret, embedded broker login);
    # None when the transport cannot know (an external broker): then the topic names the device.
    auth_key: str | None = None
    handle: Any = None  # the transport's acknowledgement handle (MQTT message id)


@dataclass(slots=True)
class Refusal:
    code: str  # a PayloadCode value or unknown_device, device_disabled, topic_mismatch, bad_topic …
    reason: str
    device_key: str | None = None
    index: int | None = None  # position of the reading inside a gateway batch or list message


@dataclass(slots=True)
class Outcome:
    """What happened to one message."""

    accepted: int = 0  # readings stored (or already stored: redelivery)
    refused: list[Refusal] = field(default_factory=list)
