"""The live hub hands a batch of items to its stream clients with one wake-up per event loop,
not one per client and item (a write to the loop's self-pipe each, on the MQTT thread), every
client getting every item in order, encoded once per role and only for the roles asked."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from central.auth import Role
from central.live import LiveHub, Outgoing
from protocol.messages import LiveMessage


def _item(i: int) -> LiveMessage:
    data = {"event_id": i, "site": "s1", "gate": "g1", "details": {"n": i}}
    return LiveMessage(kind="event", id=i, site="s1", gate="g1", data=data)


def test_a_batch_wakes_each_loop_once_and_reaches_every_client() -> None:
    # On a thread of its own: in a full run Playwright's sync API keeps a loop running on the
    # main thread, and run_until_complete refuses to start a second one there.
    failed: list[BaseException] = []

    def run() -> None:
        try:
            _one_wakeup_per_batch()
        except BaseException as exc:  # re-raised on the test's thread below
            failed.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    if failed:
        raise failed[0]


def _one_wakeup_per_batch() -> None:
    hub = LiveHub()
    loop = asyncio.new_event_loop()
    wakeups = [0]
    plain = loop.call_soon_threadsafe

    def counted(callback: Any, *args: Any) -> Any:
        wakeups[0] += 1
        return plain(callback, *args)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]

    async def subscribe() -> list[Any]:
        return [hub.subscribe() for _ in range(5)]

    subs = loop.run_until_complete(subscribe())
    items = [_item(i) for i in range(100)]
    mqtt_thread = threading.Thread(target=hub.dispatch_all, args=(items,))
    mqtt_thread.start()
    mqtt_thread.join()
    loop.run_until_complete(asyncio.sleep(0.01))
    assert wakeups[0] == 1
    for sub in subs:
        got = sub.ready(limit=1000)
        assert [o.item.id for o in got] == list(range(100))
        assert not sub.overflowed
    assert hub.delivered == 500
    loop.close()


def test_an_item_is_encoded_for_a_role_when_first_asked() -> None:
    out = Outgoing.of(_item(7))
    assert out.texts == {}
    text = out.text(Role.ADMIN)
    assert out.text(Role.ADMIN) is text and set(out.texts) == {Role.ADMIN}
    head, data = text.split("data: ")
    assert head == "event: event\nid: 7\n"
    assert json.loads(data)["details"] == {"n": 7}
