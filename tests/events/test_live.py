"""Live inbox notifications: committed changes reach the subscribers' queues, nothing blocks,
rolled-back work is never announced, and each stream carries only what concerns its user."""

from __future__ import annotations

import threading
from typing import Any

from citybrain.core.actor import Actor
from citybrain.core.bus import Bus
from citybrain.events import live, service
from event_helpers import SILULU, report
from helpers import run_async

TIMEOUT = 2.0


def run(coro: Any) -> Any:
    return run_async(coro, TIMEOUT)


def test_broadcaster_delivers_a_bus_message_to_every_subscriber() -> None:
    async def main() -> list[dict]:
        source = Bus()
        hub = live.Broadcaster()
        hub.start(source)
        first, second = hub.subscribe(), hub.subscribe()
        source.publish(live.EVENT_CHANGED, {"id": 1, "tracking_no": "ZC1", "status": "dispatched"})
        got = [await first.get(), await second.get()]
        hub.stop()
        assert source.listeners(live.EVENT_CHANGED) == 0
        return got

    assert [m["tracking_no"] for m in run(main())] == ["ZC1", "ZC1"]


def test_publishing_from_another_thread_reaches_the_loop() -> None:
    async def main() -> dict:
        hub = live.Broadcaster()
        sub = hub.subscribe()
        worker = threading.Thread(target=hub.publish, args=({"id": 7, "status": "handled"},))
        worker.start()
        worker.join()
        return await sub.get()

    assert run(main())["id"] == 7


def test_a_slow_subscriber_is_dropped_without_blocking_the_others() -> None:
    async def main() -> tuple[Any, list[int]]:
        hub = live.Broadcaster(queue_size=2)
        slow, fast = hub.subscribe(), hub.subscribe()
        seen = []
        for n in range(4):
            hub.publish({"id": n})
            seen.append((await fast.get())["id"])
        dropped = await slow.get()
        assert slow.dropped and hub.subscribers == 1  # a later publish forgot the dropped one
        return dropped, seen

    dropped, seen = run(main())
    assert dropped is None and seen == [0, 1, 2, 3]


def test_the_stream_sends_retry_messages_for_the_user_and_pings() -> None:
    async def main() -> list[str]:
        hub = live.Broadcaster()
        sub = hub.subscribe()
        chunks = live.stream(sub, lambda m: m["id"] != 2, ping_seconds=0.05)
        out = [await anext(chunks)]
        hub.publish({"id": 2, "tracking_no": "ZC-other", "status": "dispatched"})
        hub.publish({"id": 3, "tracking_no": "ZC-mine", "status": "dispatched", "department_ids": [5]})
        out.append(await anext(chunks))
        out.append(await anext(chunks))  # nothing more queued: the keep-alive comment
        return out

    retry, message, ping = run(main())
    assert retry == "retry: 3000\n\n"
    assert message.startswith("event: inbox\ndata: ") and "ZC-mine" in message and "department_ids" not in message
    assert ping == ": ping\n\n"


def test_who_is_told_about_a_change() -> None:
    change = {"id": 1, "department_ids": [5, 6], "township_code": SILULU}
    staff = Actor(user_id=1, username="s", role="staff", department_id=6, via="session")
    other = Actor(user_id=2, username="o", role="staff", department_id=9, via="session")
    grid = Actor(user_id=3, username="g", role="grid_worker", department_id=9, via="session")
    admin = Actor(user_id=4, username="a", role="admin", via="session")
    assert live.concerns(staff, change) and not live.concerns(other, change)
    assert live.concerns(grid, change, township_code=SILULU)
    assert not live.concerns(grid, change, township_code="370306102000")
    assert live.concerns(admin, change) and live.concerns(admin, {"bulk": True, "count": 3})
    assert not live.concerns(staff, {"bulk": True, "count": 3})


def _recording(bus_listener: list[dict]):  # noqa: ANN202
    from citybrain.core import bus

    return bus.listen(live.EVENT_CHANGED, bus_listener.append)


def test_a_change_is_announced_only_after_commit(db, categories, admin_actor) -> None:
    got: list[dict] = []
    stop = _recording(got)
    try:
        event = report(db, who=None, township=SILULU)
        service.transition(db, event_id=event.id, action="accept", actor=admin_actor)
        assert got == []  # still inside the transaction
        db.commit()
    finally:
        stop()
    assert [m["action"] for m in got] == ["report", "accept"]
    assert got[-1]["status"] == "dispatched" and got[-1]["department_ids"] == [event.department_id]
    assert got[-1]["tracking_no"] == event.tracking_no and got[-1]["township_code"] == SILULU


def test_rolled_back_work_is_never_announced(db, categories) -> None:
    got: list[dict] = []
    stop = _recording(got)
    try:
        report(db, who=None, township=SILULU)
        db.rollback()
        db.commit()
    finally:
        stop()
    assert got == []
    assert live.PENDING_KEY not in db.info
