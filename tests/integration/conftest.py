from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.services import Mosquitto


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One private Mosquitto for the session; tests may kill and restart it."""
    mq = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    mq.start()
    yield mq
    mq.stop()


@pytest.fixture
def live_broker(broker: Mosquitto) -> Mosquitto:
    """The session broker, started again if an earlier test left it down."""
    if broker.proc is None or broker.proc.poll() is not None:
        broker.start()
    return broker


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


from tests.integration.api_helpers import api  # noqa: E402, F401 - the fixture, shared by API tests
from tests.integration.browser import browser  # noqa: E402, F401
from tests.integration.office_helpers import office  # noqa: E402, F401 - the office API tests
from tests.integration.phone_helpers import phone_browser, phone_central  # noqa: E402, F401
