"""Printed pass cards: `POST /api/v1/passes/cards.pdf` (admin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row

from central.cards_font import FontMissingError, find_card_fonts
from central.cards_pdf import Card, CardLayout, render_cards
from central.config import CentralSettings
from central.deps import AdminUser, ConnDep, SettingsDep, record_audit
from central.store import passes_store
from central.views import aware
from protocol.epass import HolderKind

router = APIRouter(prefix="/api/v1/passes", tags=["passes"])

MAX_CARDS = 400


class CardsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pass_ids: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        min_length=1, max_length=MAX_CARDS, description="Passes to print, in print order."
    )
    layout: CardLayout = Field(
        CardLayout.A4_8, description="a4-8: eight cards per A4 sheet; card: one per A6 page."
    )


def _card(row: Row[Any], settings: CentralSettings) -> Card:
    site = settings.site(row.site)
    return Card(
        text=row.text,
        display_name=row.display_name,
        unit=row.unit,
        kind=HolderKind(row.kind),
        valid_from=aware(row.valid_from),
        valid_until=aware(row.valid_until),
        site=row.site,
        office=site.office,
        timezone=site.timezone,
        serial=row.pass_id,
    )


def _printable(conn: ConnDep, pass_ids: list[str]) -> list[Row[Any]]:
    """The passes in order; 404 for unknown ones, 409 for revoked or expired ones."""
    found = {i: passes_store.get_pass(conn, i) for i in dict.fromkeys(pass_ids)}
    missing = [i for i, row in found.items() if row is None]
    if missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such pass: {', '.join(missing)}")
    now = datetime.now(UTC)
    dead = [i for i, r in found.items() if r and (r.revoked or aware(r.valid_until) <= now)]
    if dead:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"revoked or expired, not printed: {', '.join(dead)}"
        )
    return [row for i in pass_ids if (row := found[i]) is not None]


@router.post(
    "/cards.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}},
        404: {"description": "An unknown pass id"},
        409: {"description": "A revoked or expired pass"},
        503: {"description": "No Chinese font installed (the message names the package)"},
    },
)
def print_cards(
    body: CardsRequest, user: AdminUser, conn: ConnDep, settings: SettingsDep, request: Request
) -> Response:
    """Cards with QR code, masked name, unit, kind band, validity, office and serial (admin)."""
    rows = _printable(conn, body.pass_ids)
    try:
        fonts = find_card_fonts(settings.cards.font, settings.cards.font_index)
    except FontMissingError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    pdf = render_cards([_card(r, settings) for r in rows], body.layout, fonts)
    record_audit(conn, request, user, "pass.print", None, layout=body.layout.value,
                 passes=body.pass_ids)  # fmt: skip
    headers = {"Cache-Control": "no-store", "Content-Disposition": 'inline; filename="cards.pdf"'}
    return Response(pdf, media_type="application/pdf", headers=headers)
