"""The central FastAPI application: `create_app(settings)`; ingest runs in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from central import console, keyring
from central.auth import HashGate
from central.body_limit import BodyLimit
from central.config import CentralSettings
from central.console.flash import Flashes
from central.imports.pending import PendingImports
from central.ingest import Ingest
from central.leadership import Leadership
from central.live import LiveHub
from central.metrics import Metrics
from central.phone import routes as phone
from central.retention import purge_loop
from central.routes import (
    alerts,
    auth,
    cards,
    enrol,
    events,
    gates,
    imports,
    keys,
    lockdowns,
    ops,
    pass_lifecycle,
    passes,
    people,
    policy,
)
from central.store.db import make_engine, upgrade

log = logging.getLogger(__name__)


def create_app(settings: CentralSettings, *, run_ingest: bool = True) -> FastAPI:
    """Build the app; state lives on app.state, nothing at module level."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url())
        upgrade(engine)
        with engine.begin() as conn:
            keyring.bootstrap(conn, settings, datetime.now(UTC))
        hub = LiveHub()
        app.state.settings = settings
        app.state.engine = engine
        app.state.hub = hub
        app.state.hash_gate = HashGate(settings.auth.hash_workers, settings.auth.hash_queue)
        app.state.imports = PendingImports()
        app.state.flashes = Flashes()
        app.state.metrics = Metrics(engine, hub)
        leadership = Leadership(engine)
        ingest = Ingest(settings, engine, leadership) if run_ingest else None
        app.state.ingest = ingest
        app.state.metrics.ingest = ingest
        if ingest is not None:
            ingest.live_sink = hub
            ingest.start()
        purger = asyncio.create_task(purge_loop(engine, settings.retention, leadership))
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            hub.close()
            app.state.hash_gate.close()
            if ingest is not None:
                ingest.close()
            leadership.close()
            engine.dispose()

    app = FastAPI(
        title="menjin central",
        version="0.1.0",
        description="Passes, gates, events, alerts and the live stream for a compound.",
        lifespan=lifespan,
    )
    for module in (
        ops,
        auth,
        passes,
        enrol,
        gates,
        policy,
        keys,
        lockdowns,
        events,
        alerts,
        people,
        cards,
        imports,
        pass_lifecycle,
    ):
        app.include_router(module.router)
    phone.install(app)
    # Outermost but for Starlette's error handler: before routing, parsing and auth.
    app.add_middleware(
        BodyLimit,
        default=settings.http.max_body_bytes,
        routes={
            ("POST", passes.IMPORT_PATH): settings.http.max_import_bytes,
            ("POST", imports.UPLOAD_PATH): settings.http.max_import_bytes,
            ("POST", console.IMPORT_FORM_PATH): settings.http.max_import_bytes,
        },
    )
    console.mount(app)
    return app
