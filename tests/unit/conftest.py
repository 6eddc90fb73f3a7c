"""Fixtures for the unit tests."""

from __future__ import annotations

import pytest

from edge.devices import qr_decode


@pytest.fixture
def unhurried(monkeypatch: pytest.MonkeyPatch) -> None:
    """A soft look with time to finish: what a frame reads must not hang on a busy test box.
    Every clock of the soft and lattice looks is relaxed, the smear ranking's included."""
    monkeypatch.setattr(qr_decode, "SOFT_DEADLINE_MS", 10_000.0)
    monkeypatch.setattr(qr_decode, "SOFT_BUDGET_MS", 10_000.0)
    monkeypatch.setattr(qr_decode, "LATTICE_MS", 10_000.0)
