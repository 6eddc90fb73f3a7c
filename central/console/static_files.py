"""Static files with cache headers: their URLs carry a content hash, so a week is safe."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_MAX_AGE_S = 7 * 86400


class CachedStatic(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE_S}"
        return response


@cache
def static_version() -> str:
    """A hash of every static file: a new release gets new URLs, so caches never go stale."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def static_url(name: str) -> str:
    return f"/static/{name}?v={static_version()}"
