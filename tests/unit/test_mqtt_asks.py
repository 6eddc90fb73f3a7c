"""The sync requests' pass-hints fallback, on a clock the test holds (no broker)."""

from __future__ import annotations

import json

import pytest

from edge.mqtt_asks import HINTS_ANSWER_S, SyncAsks


def _passes(asks: SyncAsks, now: float) -> bool:
    return "passes" in json.loads(asks.sync_request(7, now))


@pytest.mark.parametrize(("refresh_s", "bound"), [(300.0, HINTS_ANSWER_S), (5.0, 5.0)])
def test_the_bound_is_the_smaller_of_30_s_and_the_refresh(refresh_s: float, bound: float) -> None:
    assert SyncAsks(refresh_s, 0.0).answer_s == bound


def test_the_wait_runs_from_the_first_unanswered_request() -> None:
    asks = SyncAsks(300.0, 0.0)
    asks.connected(0.0)
    assert _passes(asks, 0.0)
    assert asks.next_due() == 30.0
    assert _passes(asks, 20.0)  # an announcement's request does not restart the wait
    assert not asks.gave_up_on_passes(29.9)
    assert asks.gave_up_on_passes(30.0)
    assert json.loads(asks.sync_request(7, 31.0)) == {"v": 1, "since": 7}  # the old form
    assert not asks.gave_up_on_passes(1_000.0)  # once per connection
    assert asks.hints_unsupported == 1 and asks.next_due() == 300.0


def test_a_delta_ends_the_wait() -> None:
    asks = SyncAsks(300.0, 0.0)
    asks.connected(0.0)
    asks.sync_request(7, 0.0)
    asks.answered()
    assert not asks.gave_up_on_passes(100.0)
    assert _passes(asks, 100.0)  # a new request starts a new wait
    assert asks.gave_up_on_passes(130.0)


def test_a_new_connection_or_central_back_online_asks_with_passes_again() -> None:
    asks = SyncAsks(300.0, 0.0)
    asks.sync_request(7, 0.0)
    assert asks.gave_up_on_passes(30.0)
    asks.central_status(online=True)  # a heartbeat: the same central
    assert not _passes(asks, 35.0)
    asks.central_status(online=False)
    assert not _passes(asks, 36.0)
    asks.central_status(online=True)  # back: perhaps updated
    assert _passes(asks, 40.0)
    assert asks.gave_up_on_passes(70.0)
    asks.connected(80.0)
    assert _passes(asks, 80.0) and asks.next_due() == 110.0
    assert asks.hints_unsupported == 2


def test_the_refresh_comes_every_refresh_s() -> None:
    asks = SyncAsks(300.0, 0.0)
    assert not asks.refresh_due(299.0)
    assert asks.refresh_due(300.0) and not asks.refresh_due(300.0)
    assert asks.next_due() == 600.0
