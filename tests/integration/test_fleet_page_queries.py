"""The fleet page's data in a constant number of statements, however many gates (SQLite file)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event, update

from central import fleet
from central.auth import Principal, Role
from central.console.fleet_data import fleet_data
from central.fleet import PolicyFields
from central.store import presence
from central.store.tables import gates
from tests.integration.api_helpers import Api

ADMIN = Principal("admin", Role.ADMIN)


def add_gates(engine: Engine, site: str, names: list[str]) -> list[int]:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        return [presence.register_gate(conn, site, name, now) for name in names]


def counted(engine: Engine, api: Api) -> tuple[dict[str, Any], int]:
    statements: list[str] = []

    def note(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", note)
    try:
        return fleet_data(engine, ADMIN, api.settings), len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_the_fleet_page_reads_every_gate_policy_at_once_and_each_stays_right(api: Api) -> None:
    engine: Engine = api.client.app.state.engine  # type: ignore[attr-defined]
    east, west, north = add_gates(engine, "hutong", ["east", "west", "north"])
    (lane,) = add_gates(engine, "lane", ["only"])
    now = datetime.now(UTC)
    with engine.begin() as conn:
        fleet.set_site_fields(conn, "hutong", PolicyFields(temperature="required"), "t", now)
        fleet.set_gate_fields(conn, west, PolicyFields(fever_threshold=37.8), "t")
        conn.execute(update(gates).where(gates.c.id == east).values(status={"policy_version": 1}))
    fleet.refresh_gates(engine, None, now, site="hutong")  # lane's gate: never signed
    few, few_statements = counted(engine, api)
    add_gates(engine, "hutong", [f"g{i:02}" for i in range(20)])
    add_gates(engine, "lane", [f"g{i:02}" for i in range(20)])
    many, many_statements = counted(engine, api)
    assert many_statements == few_statements  # not one (or four) more per gate

    by_id = {g.gate_id: g for site in few["sites"] for g in site["gates"]}
    assert [s["policy"].site for s in few["sites"]] == ["hutong", "lane"]
    assert [g.gate for g in few["sites"][0]["gates"]] == ["east", "north", "west"]
    assert by_id[west].fields == {"fever_threshold": 37.8} and by_id[east].fields == {}
    assert by_id[north].site_fields == {"temperature": "required"}
    assert by_id[lane].site_fields == {} and by_id[lane].gate == "only"
    assert by_id[east].applied_version == 1 and by_id[north].applied_version is None
    for gate_id in (east, west, north):
        document = by_id[gate_id].document
        assert by_id[gate_id].version == 1 and document is not None
        assert (document.gate, document.version) == (by_id[gate_id].gate, 1)
    assert by_id[west].document is not None and by_id[west].document.fever_threshold == 37.8
    assert by_id[lane].version == 0 and by_id[lane].document is None
    assert sum(len(s["gates"]) for s in many["sites"]) == 44
    for site in many["sites"]:
        assert [g.gate for g in site["gates"]] == [g.gate for g in site["policy"].gates]
        assert all(g.site == site["policy"].site for g in site["gates"])
