"""Shared fixtures: strict environment skips, and failing any test that logged an exception."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

STRICT_ENV = "MENJIN_STRICT_ENV"


def skip_or_fail(reason: str) -> None:
    """Skip a test whose environment is missing, or fail it when CI demands the full environment."""
    if os.environ.get(STRICT_ENV):
        pytest.fail(f"{STRICT_ENV} is set, so this cannot be skipped: {reason}")
    pytest.skip(reason)


class _ExceptionCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_log_exception(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test during which an exception was logged (a callback that raised)."""
    catcher = _ExceptionCatcher()
    root = logging.getLogger()
    root.addHandler(catcher)
    try:
        yield
    finally:
        root.removeHandler(catcher)
    if "allow_logged_exceptions" in request.keywords:
        return
    if catcher.records:
        first = catcher.records[0]
        pytest.fail(f"exception logged during test: {first.getMessage()} ({first.name})")
