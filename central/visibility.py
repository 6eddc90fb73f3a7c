"""Who may see what: the one place that decides which role sees which personal data.

Every route that returns passes, events (list, CSV, live stream), alerts or gates passes its
output through `redact`, and the routes that return nothing but one kind of data (a QR image,
a snapshot) admit only `WHO_SEES` of that kind. tests/integration/test_api_visibility.py walks
every response model the OpenAPI document names × every role through HTTP against this table;
a response model missing from `FIELDS` fails that test.
"""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Any

from central.auth import Role


class Data(StrEnum):
    """Kinds of sensitive data in responses."""

    PASS_TEXT = "pass_text"  # noqa: S105 - a bearer credential (it opens the gate), no secret
    FULL_NAME = "full_name"
    PHONE = "phone"
    UNIT = "unit"  # building / unit / room
    HOLDER_KIND = "holder_kind"  # resident, visitor, worker ...
    MASKED_NAME = "masked_name"  # 张*华, as printed in the pass
    SNAPSHOT = "snapshot"  # a face
    PERSON = "person"  # the id that ties one person's passes together


ALL = frozenset(Role)
WHO_SEES: dict[Data, frozenset[Role]] = {
    Data.PASS_TEXT: frozenset({Role.ADMIN}),
    Data.FULL_NAME: frozenset({Role.ADMIN}),
    Data.PHONE: frozenset({Role.ADMIN}),
    Data.PERSON: frozenset({Role.ADMIN}),
    Data.UNIT: frozenset({Role.ADMIN, Role.GUARD}),
    Data.HOLDER_KIND: frozenset({Role.ADMIN, Role.GUARD}),
    Data.SNAPSHOT: frozenset({Role.ADMIN, Role.GUARD}),
    Data.MASKED_NAME: ALL,
}

# Every response model, by name, and its fields that carry sensitive data ("a.b": key b of the
# dict field a). Models listed with {} carry none (or only other listed models).
FIELDS: dict[str, dict[str, Data]] = {
    "PassPublic": {
        "text": Data.PASS_TEXT,
        "qr_url": Data.PASS_TEXT,
        "holder": Data.FULL_NAME,
        "phone": Data.PHONE,
        "person_id": Data.PERSON,
        "unit": Data.UNIT,
        "kind": Data.HOLDER_KIND,
        "display_name": Data.MASKED_NAME,
    },
    "EventPublic": {
        "snapshot_url": Data.SNAPSHOT,
        "details.display_name": Data.MASKED_NAME,
        "details.holder_kind": Data.HOLDER_KIND,
    },
    "PassIssued": {},  # filled in below: PassPublic's and the enrolment link
    "PassPage": {},
    "EventPage": {},
    "AlertPublic": {},
    "GatePublic": {},
    "GateProvisioned": {},
    "BrokerCredentials": {},
    "OpenIssued": {},
    "ImportReport": {},
    "RowError": {},
    "Token": {},
    "Me": {},
    "UserPublic": {},
    "ApiKeyCreated": {},
    "ApiKeyPublic": {},
    "SessionsEnded": {},
    "PersonForgotten": {},
    "AuditEntry": {},
    # The office's models below are returned by admin-only routes (ADMIN_ONLY).
    "ImportPreview": {},
    "PreviewRow": {"holder": Data.FULL_NAME, "unit": Data.UNIT},
    "RowProblem": {},
    "Problem": {},
    "ImportResult": {},
    "Reissued": {},
    "RevocationState": {},
    "GateApplied": {},
    # Fleet control (issue #11): policy, keys and orders hold no personal data; the passes a
    # key signed (KeyPass, ReissuedPass) do, and only admin-only routes return them.
    "GatePolicyPublic": {},
    "SitePolicyPublic": {},
    "GateVersion": {},
    "PolicyDocument": {},
    "PublicKey": {},
    "Lockdown": {},
    "OrderPublic": {},
    "KeyPublic": {},
    "KeyPass": {"holder": Data.FULL_NAME, "kind": Data.HOLDER_KIND},
    "ReissueReport": {},
    "ReissuedPass": {"text": Data.PASS_TEXT},
    # The phone enrolment API answers the holder of a one-time link, not a role: the link is
    # that holder's own pass (masked name, unit, kind), so nothing in it is redacted.
    "LinkPublic": {},
    "Enrolled": {},
    "NewLink": {},
    "ServerTime": {},
}
# The one-time link yields the pass to whoever opens it first, so it is as secret as the text.
FIELDS["PassIssued"] = {**FIELDS["PassPublic"], "enrol_url": Data.PASS_TEXT}

# Models that only admin-only routes return: no redaction, the role check keeps them from
# guards and viewers (tests/integration/test_api_visibility.py checks every such route).
ADMIN_ONLY = frozenset(
    {"ImportPreview", "PreviewRow", "ImportResult", "Reissued", "PassIssued", "KeyPublic",
     "KeyPass", "ReissueReport", "ReissuedPass"}
)  # fmt: skip


def sees(role: Role, data: Data) -> bool:
    return role in WHO_SEES[data]


def roles(data: Data) -> tuple[Role, ...]:
    return tuple(sorted(WHO_SEES[data]))


def redact(role: Role, model: str, data: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` (one `model` as a dict) without what `role` may not see: top-level
    fields become None, keys inside a dict field are dropped."""
    out = dict(data)
    for path, kind in FIELDS[model].items():
        if sees(role, kind):
            continue
        field, _, key = path.partition(".")
        if not key:
            if field in out:
                out[field] = None
        elif isinstance(out.get(field), dict) and key in out[field]:
            out[field] = copy.copy(out[field])
            del out[field][key]
    return out


def pass_search_columns(role: Role) -> tuple[str, ...]:
    """The pass columns a free-text search of this role may match (no oracle on hidden data)."""
    columns = ["display_name", "pass_id"]
    if sees(role, Data.FULL_NAME):
        columns.append("holder")
    if sees(role, Data.UNIT):
        columns.append("unit")
    return tuple(columns)
