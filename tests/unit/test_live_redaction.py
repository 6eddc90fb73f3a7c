"""The live stream shows each role only what central/visibility.py lets it see."""

from __future__ import annotations

import json

from central.auth import Role
from central.live import Outgoing
from protocol.messages import LiveMessage


def _data(text: str) -> dict[str, object]:
    line = next(x for x in text.splitlines() if x.startswith("data: "))
    parsed: dict[str, object] = json.loads(line[len("data: ") :])
    return parsed


def test_an_event_is_encoded_once_per_role_with_that_roles_fields() -> None:
    details = {"display_name": "张*华", "holder_kind": "resident", "flags": []}
    event = {"event_id": 7, "snapshot_url": "/api/v1/events/7/snapshot.jpg", "details": details}
    out = Outgoing.of(LiveMessage(kind="event", id=7, site="s", gate="g", data=event))
    admin, guard, viewer = (_data(out.text(r)) for r in (Role.ADMIN, Role.GUARD, Role.VIEWER))
    assert admin == guard == event
    assert viewer["snapshot_url"] is None  # a face
    assert viewer["details"] == {"display_name": "张*华", "flags": []}
    assert details["holder_kind"] == "resident"  # the stored view is not mutated


def test_status_and_alerts_are_the_same_for_everyone() -> None:
    out = Outgoing.of(LiveMessage(kind="status", site="s", gate="g", data={"state": "offline"}))
    assert len({out.text(r) for r in Role}) == 1
