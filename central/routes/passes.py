"""Passes: issue, list, show, revoke, QR images, CSV import. (Being written.)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/passes", tags=["passes"])
