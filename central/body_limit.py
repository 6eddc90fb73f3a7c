"""Request body limits, enforced on the ASGI receive stream before routing, parsing or auth.

A declared Content-Length over the limit is answered 413 before a byte of the body is read; a
body without one (chunked) is counted as it arrives and cut off at the limit. Either way no
more than the limit is ever buffered.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """`default` bytes per request body; `routes` maps (method, path) to its own limit."""

    def __init__(
        self, app: ASGIApp, default: int, routes: dict[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.default = default
        self.routes = routes or {}
        self.rejected = 0

    def limit_for(self, scope: Scope) -> int:
        return self.routes.get((scope.get("method", ""), scope.get("path", "")), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._reject(send, limit)
            return
        seen = 0
        replied = False
        started = False

        async def counted_receive() -> Message:
            nonlocal seen, replied
            if replied:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    replied = True
                    if not started:
                        await self._reject(send, limit)
                    return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if replied:
                return  # our 413 went out instead of whatever the app answers
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not replied:
                raise
            # The app failed on the cut-off body (a client disconnect to it); 413 is sent.

    async def _reject(self, send: Send, limit: int) -> None:
        self.rejected += 1
        body = json.dumps({"detail": f"request body over {limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
