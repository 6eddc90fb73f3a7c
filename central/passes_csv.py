"""The pass import upload, read as offices save it from Excel: UTF-8 (BOM or not) or GBK.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first pass row 2.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, File, HTTPException, Request, UploadFile, status
from pydantic import BaseModel, Field, ValidationError

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
REQUIRED_COLUMNS = ("site", "holder", "kind", "valid_from", "valid_until")
OPTIONAL_COLUMNS = ("gates", "hours", "days", "max_uses", "unit", "phone")
_GATE_SEPARATORS = re.compile(r"[;|]")
# Windows names .csv files application/vnd.ms-excel; curl --data-binary sends no type at all.
RAW_CSV_TYPES = {"", "text/csv", "text/plain", "application/csv", "application/vnd.ms-excel",
                 "application/octet-stream"}  # fmt: skip
TIME_COLUMNS = ("valid_from", "valid_until")
# Excel re-saves ISO times the way it displays them, e.g. 2026/5/1 8:00 in a Chinese locale.
_EXCEL_TIME = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


T = TypeVar("T")


class CsvFormatError(ValueError):
    """The file as a whole cannot be imported (encoding, header)."""


class CsvTooLargeError(ValueError):
    """The file has more bytes or rows than one import accepts."""


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One non-blank data row: its spreadsheet row number and the non-empty cells by column."""

    row: int
    fields: dict[str, str | list[str]]
    extra_cells: bool = False


class RowError(BaseModel):
    """Why one row was not imported."""

    row: int = Field(description="Spreadsheet row number; the header is row 1.")
    field: str | None = Field(description="The column at fault; null: the row as a whole.")
    message: str


def decode_csv(data: bytes) -> str:
    """UTF-8 (an Excel BOM is dropped), else GBK as Chinese Excel saves 'CSV' by default."""
    if len(data) > MAX_BYTES:
        raise CsvTooLargeError(f"file is {len(data)} bytes; at most {MAX_BYTES} per import")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is a superset of GBK, so it also reads files with rarer characters.
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise CsvFormatError("file is neither UTF-8 nor GBK text") from exc


def _check_header(header: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CsvFormatError(f"missing required column(s): {', '.join(missing)}")
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    unknown = [c for c in header if c not in known]
    if unknown:
        # A misspelt optional column would otherwise drop its data without a word.
        raise CsvFormatError(f"unknown column(s): {', '.join(unknown)}")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise CsvFormatError(f"repeated column(s): {', '.join(repeated)}")


def excel_time(value: str) -> str:
    """'2026/5/1 8:00' -> '2026-05-01T08:00:00'; anything else is returned unchanged."""
    match = _EXCEL_TIME.match(value)
    if match is None:
        return value
    y, mo, d, h, mi, sec = (int(g or 0) for g in match.groups())
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}"


def _fields(header: list[str], cells: list[str]) -> dict[str, str | list[str]]:
    fields: dict[str, str | list[str]] = {}
    for name, cell in zip(header, cells, strict=False):
        value = cell.strip()
        if not value:
            continue
        if name == "gates":
            fields[name] = [g.strip() for g in _GATE_SEPARATORS.split(value) if g.strip()]
        elif name in TIME_COLUMNS:
            fields[name] = excel_time(value)
        else:
            fields[name] = value
    return fields


def read_rows(data: bytes) -> list[CsvRow]:
    """The file's pass rows; raises CsvFormatError or CsvTooLargeError for the whole file."""
    reader = csv.reader(io.StringIO(decode_csv(data), newline=""))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if not any(header):
            raise CsvFormatError("file is empty; the first row must name the columns")
        _check_header(header)
        return _data_rows(header, reader)
    except csv.Error as exc:
        raise CsvFormatError(f"not a readable CSV file: {exc}") from exc


def _data_rows(header: list[str], reader: Iterator[list[str]]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # Excel leaves rows of empty cells behind
        if len(rows) == MAX_ROWS:
            raise CsvTooLargeError(f"more than {MAX_ROWS} rows; split the file")
        extra = any(c.strip() for c in cells[len(header) :])
        rows.append(CsvRow(number, _fields(header, cells), extra))
    return rows


def _validation_errors(row: int, exc: ValidationError) -> list[RowError]:
    return [
        RowError(
            row=row,
            field=str(e["loc"][0]) if e["loc"] else None,
            message=e["msg"].removeprefix("Value error, "),
        )
        for e in exc.errors()
    ]


def check_rows(
    rows: list[CsvRow], make: Callable[[dict[str, str | list[str]]], T]
) -> tuple[list[T], list[RowError]]:
    """Each row through `make`; its ValidationError or ValueError becomes that row's errors."""
    made: list[T] = []
    errors: list[RowError] = []
    for row in rows:
        if row.extra_cells:
            errors.append(RowError(row=row.row, field=None, message="more cells than columns"))
            continue
        try:
            made.append(make(row.fields))
        except ValidationError as exc:
            errors.extend(_validation_errors(row.row, exc))
        except ValueError as exc:
            errors.append(RowError(row=row.row, field=None, message=str(exc)))
    return made, errors


async def read_csv_upload(
    request: Request,
    file: Annotated[UploadFile | None, File(description="The CSV file.")] = None,
) -> bytes:
    """The CSV bytes: multipart field `file`, or a raw text/csv body."""
    data = bytearray()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if file is not None:
        data += await file.read(MAX_BYTES + 1)
    elif content_type.startswith("multipart/"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no multipart field 'file'")
    elif content_type not in RAW_CSV_TYPES:
        # A urlencoded form, say, has already been read as one and is no CSV anyway.
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the CSV as multipart field 'file' or as a text/csv body",
        )
    else:
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BYTES:
                break
    if len(data) > MAX_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"file exceeds {MAX_BYTES} bytes; split it"
        )
    return bytes(data)


CsvUpload = Annotated[bytes, Depends(read_csv_upload)]
