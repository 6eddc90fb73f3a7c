"""`[mqtt] qos` is 0 or 1 on both sides, 1 unless a deployment says otherwise (NATS: 0)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from central.config import MqttSection as CentralMqtt
from edge.mqtt_settings import MqttSection as GateMqtt


@pytest.mark.parametrize("section", [GateMqtt, CentralMqtt])
def test_qos_defaults_to_1_and_takes_only_0_or_1(section: type[GateMqtt | CentralMqtt]) -> None:
    assert section().qos == 1
    assert section(qos=0).qos == 0
    for bad in (2, -1, "one"):
        with pytest.raises(ValidationError, match="qos"):
            section(qos=bad)
