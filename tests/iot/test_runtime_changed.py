"""iot.changed: at most one announcement a second, and a change in the quiet second is not lost."""

from __future__ import annotations

import time
from types import SimpleNamespace

from citybrain.core import bus
from citybrain.iot.runtime import IOT_CHANGED, IotRuntime


def test_changes_inside_the_quiet_second_are_announced_when_it_ends() -> None:
    got: list[float] = []
    stop = bus.listen(IOT_CHANGED, lambda _payload: got.append(time.monotonic()))
    try:
        settings = SimpleNamespace(ingest_enabled=False, iot_max_payload_kb=256, iot_max_future_s=300)
        runtime = IotRuntime(settings, lambda: None)
        for _ in range(5):
            runtime._announce_changed()  # noqa: SLF001
        assert len(got) == 1
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(got) == 2  # one trailing announcement for the four throttled changes
        time.sleep(1.2)
        assert len(got) == 2  # and nothing more without a new change
    finally:
        stop()
