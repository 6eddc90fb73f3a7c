"""The bridge's link bookkeeping, now shared with central's replicas in protocol/transport.py.

Kept as names so `from edge.mqtt_links import Subscriptions` (edge/mqtt_bridge.py) and the
other names this module used to define still import.
"""

from __future__ import annotations

from protocol.transport import SUBACK_FAILURE, Subscription, Subscriptions, jittered

__all__ = ["SUBACK_FAILURE", "Subscription", "Subscriptions", "jittered"]
