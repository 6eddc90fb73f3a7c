"""The bridge's link bookkeeping, now shared with central's replicas in protocol/transport.py.

Kept as a name so `from edge.mqtt_links import Subscriptions` (edge/mqtt_bridge.py) still works.
"""

from __future__ import annotations

from protocol.transport import Subscriptions

__all__ = ["Subscriptions"]
