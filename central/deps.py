"""FastAPI dependency aliases shared by every router: the store, the caller, role checks, audit."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import Connection, Engine

from central import auth
from central.auth import Principal, Role
from central.config import CentralSettings
from central.console import session as console_session
from central.ingest import Ingest
from central.store.tables import audit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> CentralSettings:
    settings: CentralSettings = request.app.state.settings
    return settings


def get_ingest(request: Request) -> Ingest | None:
    ingest: Ingest | None = request.app.state.ingest
    return ingest


def get_conn(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Connection]:
    """One transaction per request: committed on success, rolled back on any error."""
    with engine.begin() as conn:
        yield conn


# Ids beyond 63 bits would overflow the database's integer types: reject them as 422 instead.
MAX_ID = 2**62
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]

EngineDep = Annotated[Engine, Depends(get_engine)]
ConnDep = Annotated[Connection, Depends(get_conn)]
SettingsDep = Annotated[CentralSettings, Depends(get_settings)]
IngestDep = Annotated[Ingest | None, Depends(get_ingest)]

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="not authenticated",
    headers={"WWW-Authenticate": "Bearer"},
)


def current_principal(
    request: Request,
    engine: EngineDep,
    token: Annotated[str | None, Depends(oauth2)],
    api_key: Annotated[str | None, Depends(api_key_header)],
) -> Principal:
    now = datetime.now(UTC)
    with engine.connect() as conn:
        found = None
        if token and token.startswith(auth.API_KEY_PREFIX):
            found = auth.principal_for_api_key(conn, token, now)  # e.g. Prometheus's bearer
        elif token:
            found = auth.principal_for_token(conn, token, now)
        elif api_key:
            found = auth.principal_for_api_key(conn, api_key, now)
        else:  # the console: a signed cookie, plus the CSRF header on unsafe methods
            found = console_session.principal_from_cookie(request, conn, now)
    if found is None:
        raise UNAUTHORIZED
    return found


CurrentUser = Annotated[Principal, Depends(current_principal)]


def allowed(user: Principal, *roles: Role) -> bool:
    """The one role rule, for the API's checks and the console's buttons: admin may do all."""
    return user.role in {Role.ADMIN, *roles}


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting only the given roles (admin is always admitted)."""

    def check(user: CurrentUser) -> Principal:
        if not allowed(user, *roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} may not do this")
        return user

    return check


AnyUser = Annotated[Principal, Depends(require(Role.GUARD, Role.VIEWER))]
GuardUser = Annotated[Principal, Depends(require(Role.GUARD))]
AdminUser = Annotated[Principal, Depends(require())]


@lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request) -> str:
    """The client's address: the TCP peer, unless that peer is a configured trusted proxy,
    then the nearest X-Forwarded-For entry that is not itself a trusted proxy."""
    peer = request.client.host if request.client else "?"
    settings: CentralSettings = request.app.state.settings
    networks = _networks(tuple(settings.http.trusted_proxies))
    if not networks or not _trusted(peer, networks):
        return peer[:64]
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    for hop in reversed(hops):
        if hop and not _trusted(hop, networks):
            return hop[:64]
    return peer[:64]


def record_audit(
    conn: Connection,
    request: Request,
    actor: Principal,
    action: str,
    target: str | None = None,
    **details: Any,
) -> None:
    """Every write leaves a line: who, what, when, from where."""
    conn.execute(
        audit.insert().values(
            at=datetime.now(UTC), actor=actor.name, action=action, target=target,
            remote=client_address(request), details=details,
        )
    )  # fmt: skip
