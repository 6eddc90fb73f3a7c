"""The link bookkeeping both sides share, without a broker: SUBACK retries and URL rotation."""

from __future__ import annotations

import logging

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge.mqtt_links import Subscriptions as BridgeSubscriptions
from protocol.transport import Endpoints, Subscriptions, connect_refused, make_client


def test_refusals_back_off_with_jitter_and_a_grant_clears_them() -> None:
    now = [100.0]
    subs = Subscriptions([("a", 1), ("b", 1)], base_s=1.0, max_s=8.0, rng=lambda: 1.0,
                         clock=lambda: now[0])  # fmt: skip
    assert subs.connected() == [("a", 1), ("b", 1)]
    subs.sent(1, [("a", 1), ("b", 1)])
    assert subs.answered(1, [1, 0x80]) == ["b"]
    assert not subs.ok and subs.holds("a") and subs.refused() == ["b"]
    delays = []
    for mid in range(2, 7):
        start = now[0]
        while not subs.due():
            now[0] += 0.25
        delays.append(now[0] - start)
        subs.sent(mid, [("b", 1)])
        subs.answered(mid, [0x80])
    assert delays == sorted(delays) and delays[-1] <= 8.5  # grows, capped
    subs.sent(9, [("b", 1)])
    subs.answered(9, [1])
    assert subs.ok and subs.refused_total == 6 and subs.refused() == []
    subs.sent(10, [("a", 1)])
    now[0] += 11  # never answered: as good as refused
    assert subs.due() == [] and subs.refused_total == 7


def test_endpoints_rotate_and_a_single_url_stays_put() -> None:
    many = Endpoints(["mqtt://h1:1", "mqtt://h2:2", "mqtts://h3"], rng=lambda: 0.5, jitter_s=4)
    assert many.current == ("h1", 1)
    assert [many.advance() for _ in range(3)] == [("h2", 2), ("h3", 8883), ("h1", 1)]
    assert many.failovers == 3 and many.pause_s() == 2.0
    one = Endpoints(["mqtt://only:1883"])
    assert one.advance() == ("only", 1883) and one.failovers == 0


def test_a_suback_read_before_the_subscribe_is_recorded_still_counts() -> None:
    subs = BridgeSubscriptions([("a", 1), ("b", 1)])  # the bridge's import path still works
    subs.connected()
    assert subs.answered(7, [0x80, 1]) == []  # paho's network thread was first
    assert subs.sent(7, [("a", 1), ("b", 1)]) == ["a"]
    assert subs.holds("b") and not subs.holds("a") and subs.refused_total == 1


def test_want_adds_and_drops_filters_and_forgets_what_was_dropped() -> None:
    """Central's replica changes its filters as it takes sites over; a dropped one is no
    longer reported, counted or retried, even if its SUBACK was in flight."""
    now = [0.0]
    subs = Subscriptions([("events", 1), ("old", 1)], rng=lambda: 0.0, clock=lambda: now[0])
    subs.sent(1, subs.connected())
    subs.answered(1, [0x80, 0x80])
    assert subs.refused() == ["events", "old"] and subs.refused_total == 2
    new, gone = subs.want([("events", 1), ("site/x", 1)])
    assert new == [("site/x", 1)] and gone == ["old"]
    now[0] += 1
    assert subs.refused() == ["events"] and [t for t, _ in subs.due()] == ["events"]
    subs.sent(2, [("site/x", 1), ("old", 1)])
    assert subs.answered(2, [1, 0x80]) == [] and subs.refused_total == 2
    assert subs.holds("site/x") and not subs.holds("old") and not subs.ok
    assert subs.want([("events", 1), ("site/x", 1)]) == ([], [])


@pytest.mark.parametrize(("code", "auth"), [(134, True), (135, True), (136, False)])
def test_connect_refused_gives_up_only_on_bad_credentials(
    code: int, auth: bool, caplog: pytest.LogCaptureFixture
) -> None:
    client, _host, _port = make_client("mqtt://127.0.0.1:1", "t")
    reason = ReasonCode(PacketTypes.CONNACK, identifier=code)
    with caplog.at_level(logging.WARNING):
        assert connect_refused(client, reason, "this gate's", "Fix [mqtt].") is auth
    level = logging.CRITICAL if auth else logging.WARNING
    assert [r.levelno for r in caplog.records] == [level]
    assert ("refused this gate's credentials" in caplog.text) is auth
