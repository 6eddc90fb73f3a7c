"""The bridge's link bookkeeping without a broker: SUBACK retries and URL rotation."""

from __future__ import annotations

from edge.mqtt_links import Subscriptions
from protocol.transport import Endpoints


def test_refusals_back_off_with_jitter_and_a_grant_clears_them() -> None:
    now = [100.0]
    subs = Subscriptions([("a", 1), ("b", 1)], base_s=1.0, max_s=8.0, rng=lambda: 1.0,
                         clock=lambda: now[0])  # fmt: skip
    assert subs.connected() == [("a", 1), ("b", 1)]
    subs.sent(1, [("a", 1), ("b", 1)])
    assert subs.answered(1, [1, 0x80]) == ["b"]
    assert not subs.ok and subs.holds("a")
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
    assert subs.ok and subs.refused_total == 6
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
    subs = Subscriptions([("a", 1), ("b", 1)])
    subs.connected()
    assert subs.answered(7, [0x80, 1]) == []  # paho's network thread was first
    assert subs.sent(7, [("a", 1), ("b", 1)]) == ["a"]
    assert subs.holds("b") and not subs.holds("a") and subs.refused_total == 1
