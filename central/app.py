"""The central FastAPI application: `create_app(settings)`; ingest runs in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from central.config import CentralSettings
from central.ingest import Ingest
from central.store.db import make_engine, upgrade


def create_app(settings: CentralSettings, *, run_ingest: bool = True) -> FastAPI:
    """Build the app; state lives on app.state, nothing at module level."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url())
        upgrade(engine)
        app.state.settings = settings
        app.state.engine = engine
        ingest = Ingest(settings, engine) if run_ingest else None
        app.state.ingest = ingest
        if ingest is not None:
            ingest.start()
        try:
            yield
        finally:
            if ingest is not None:
                ingest.close()
            engine.dispose()

    app = FastAPI(title="menjin central", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
