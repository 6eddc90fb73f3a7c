"""What importing a sheet would do, row by row: new, update, unchanged, or error.

A person is (site, holder, unit). Rows are checked once, without the database (`check_rows`);
the plan against the stored passes (`plan_rows`) is made at preview and again, inside the
confirming transaction, at confirm, so what is written is exactly what was previewed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Row

from central.imports.messages import Problem, problem, problems_of
from central.imports.sheet import Sheet
from central.pass_signing import PassCreate
from central.store import office_store
from central.store.office_store import PersonKey, person_key
from central.views import aware

# A change to any of these means the pass itself differs: a new one is signed.
VALIDITY_FIELDS = ("kind", "valid_from", "valid_until", "gates", "hours", "days", "max_uses")
# These live only in central's record of the person; they are updated in place.
PERSON_FIELDS = ("phone",)


class Outcome(StrEnum):
    NEW = "new"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RowIssue:
    field: str | None
    column: str | None
    problem: Problem


@dataclass(frozen=True, slots=True)
class CheckedRow:
    """A sheet row after validation: its PassCreate, or why it has none."""

    row: int
    body: PassCreate | None
    issues: tuple[RowIssue, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedRow:
    checked: CheckedRow
    outcome: Outcome
    existing: Row[Any] | None = None
    changes: tuple[str, ...] = ()

    @property
    def reissue(self) -> bool:
        return any(c in VALIDITY_FIELDS for c in self.changes)

    def signature(self) -> tuple[object, ...]:
        """What confirm must find unchanged since the preview."""
        old = self.existing.pass_id if self.existing is not None else None
        return self.checked.row, self.outcome, old, self.changes


def _issue(titles: dict[str, str], field: str | None, found: Problem) -> RowIssue:
    return RowIssue(field, titles.get(field or "") if field else None, found)


Fits = Callable[[PassCreate], None]


def _check_one(
    fields: dict[str, Any], titles: dict[str, str], fits: Fits
) -> PassCreate | tuple[RowIssue, ...]:
    try:
        body = PassCreate.model_validate(fields)
    except ValidationError as exc:
        return tuple(_issue(titles, f, p) for f, p in problems_of(exc, titles))
    try:
        fits(body)
    except ValueError as exc:
        return (_issue(titles, None, problem("import.error.pass_too_large", str(exc))),)
    return body


def check_rows(sheet: Sheet, fits: Fits) -> list[CheckedRow]:
    """Validate every row; `fits` raises ValueError when a pass would not fit a QR code."""
    checked: list[CheckedRow] = []
    first_row: dict[PersonKey, int] = {}
    for row in sheet.rows:
        if row.extra_cells:
            issue = RowIssue(None, None, problem("import.error.extra_cells"))
            checked.append(CheckedRow(row.row, None, (issue,)))
            continue
        result = _check_one(row.fields, sheet.titles, fits)
        if isinstance(result, tuple):
            checked.append(CheckedRow(row.row, None, result))
            continue
        key = person_key(result.site, result.holder, result.unit)
        if key in first_row:
            found = problem("import.error.duplicate_person", first_row=first_row[key])
            checked.append(CheckedRow(row.row, None, (_issue(sheet.titles, "holder", found),)))
            continue
        first_row[key] = row.row
        checked.append(CheckedRow(row.row, result))
    return checked


def _stored(existing: Row[Any], name: str) -> object:
    value = getattr(existing, name)
    return aware(value) if name in ("valid_from", "valid_until") else value


def changed_fields(body: PassCreate, existing: Row[Any]) -> tuple[str, ...]:
    return tuple(
        name
        for name in (*VALIDITY_FIELDS, *PERSON_FIELDS)
        if getattr(body, name) != _stored(existing, name)
    )


def plan_rows(conn: Connection, checked: list[CheckedRow]) -> list[PlannedRow]:
    """Each checked row against the person's newest unrevoked pass."""
    sites = {c.body.site for c in checked if c.body is not None}
    current = office_store.current_passes(conn, sites) if sites else {}
    planned = []
    for c in checked:
        if c.body is None:
            planned.append(PlannedRow(c, Outcome.ERROR))
            continue
        existing = current.get(person_key(c.body.site, c.body.holder, c.body.unit))
        if existing is None:
            planned.append(PlannedRow(c, Outcome.NEW))
            continue
        changes = changed_fields(c.body, existing)
        outcome = Outcome.UPDATE if changes else Outcome.UNCHANGED
        planned.append(PlannedRow(c, outcome, existing, changes))
    return planned
