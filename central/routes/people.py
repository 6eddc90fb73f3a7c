"""People: forgetting one on request (PIPL): their passes are revoked, their data removed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from central.deps import AdminUser, EngineDep, IdPath, IngestDep, record_audit
from central.store import passes_store, sync_store
from central.views import aware

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/people", tags=["people"])
FORGET_REASON = "holder's data deleted on request"


class PersonForgotten(BaseModel):
    person_id: int
    passes_revoked: list[str] = Field(description="Ids of the passes revoked and deleted.")
    events_scrubbed: int = Field(description="Events kept, with the holder's name removed.")


def forget(
    conn: Connection, person_id: int, by: str, now: datetime
) -> tuple[PersonForgotten, dict[str, int]] | None:
    """Revoke and delete a person's passes and delete the person; None if there is none.

    Returns the result and, per site, the revocation version its gates must be told about.
    Events stay (the compound's record) without the name the gate journalled.
    """
    rows = passes_store.person_passes(conn, person_id)
    if rows is None:
        return None
    versions: dict[str, int] = {}
    for row in rows:
        until = int(aware(row.valid_until).timestamp())
        versions[row.site] = sync_store.revoke(
            conn, row.pass_id, FORGET_REASON, now, until=until, by=by
        )
    ids = [r.pass_id for r in rows]
    scrubbed = passes_store.forget_person(conn, person_id, ids)
    result = PersonForgotten(person_id=person_id, passes_revoked=ids, events_scrubbed=scrubbed)
    return result, versions


@router.delete("/{person_id}", responses={404: {"description": "No such person"}})
def forget_person(
    person_id: IdPath, user: AdminUser, engine: EngineDep, ingest: IngestDep, request: Request
) -> PersonForgotten:
    """Forget a person (admin): revoke and delete their passes, delete their name, unit and
    phone; their events stay, without the name. The site's gates hear after commit."""
    with engine.begin() as conn:
        done = forget(conn, person_id, user.name, datetime.now(UTC))
        if done is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such person")
        result, versions = done
        record_audit(conn, request, user, "person.forget", str(person_id),
                     passes=len(result.passes_revoked),
                     events_scrubbed=result.events_scrubbed)  # fmt: skip
    if ingest is not None:
        for site, version in versions.items():
            try:
                ingest.announce(site, version)
            except Exception:
                log.warning("could not announce revocation version %s", version, exc_info=True)
    return result
