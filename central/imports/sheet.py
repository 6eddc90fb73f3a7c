"""An uploaded sheet (XLSX or CSV, Chinese or English headers) as pass rows of text cells.

XLSX is read with openpyxl (chosen by measurement, docs/performance.md): it gives each cell's
number format, so a phone typed as a number comes back as its digits, with the leading zeros
a `000…` format shows. Formulas are read by their cached value. A hostile file is bounded by
bytes, by its declared unpacked size (CPython's zipfile never inflates a member past it), by
rows and by columns; defusedxml (installed with central) refuses XML entity tricks.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils.datetime import from_excel

from central.holder_kinds import kind_from_sheet
from central.passes_csv import (
    MAX_BYTES,
    MAX_ROWS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TIME_COLUMNS,
    CsvFormatError,
    CsvRow,
    CsvTooLargeError,
    _fields,
    decode_csv,
)

MAX_COLUMNS = 64
MAX_SCANNED_ROWS = 5 * MAX_ROWS  # blank rows included
MAX_UNPACKED = 64 * 1024 * 1024
MAX_MEMBERS = 500
XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (Excel 97-2003)

# The template's headers; a sheet may use these, the API's names or the aliases below.
TITLES: dict[str, str] = {
    "site": "小区", "holder": "姓名", "kind": "类别", "valid_from": "生效时间",
    "valid_until": "失效时间", "gates": "可通行的门", "hours": "每日时段", "days": "星期",
    "max_uses": "每门次数上限", "unit": "楼栋单元室", "phone": "手机号",
}  # fmt: skip
_ALIASES = {
    "站点": "site", "名字": "holder", "身份": "kind", "人员类别": "kind", "类型": "kind",
    "开始时间": "valid_from", "有效期起": "valid_from", "结束时间": "valid_until",
    "有效期止": "valid_until", "到期时间": "valid_until", "门": "gates", "门禁": "gates",
    "时段": "hours", "次数上限": "max_uses", "住址": "unit", "房号": "unit", "门牌": "unit",
    "电话": "phone", "手机": "phone", "联系电话": "phone", "手机号码": "phone",
}  # fmt: skip
_BY_HEADER = {**{t: f for f, t in TITLES.items()}, **_ALIASES}
_KNOWN = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
_NOTE = re.compile(r"[（(].*?[)）]|[*＊]")  # "生效时间（北京时间）*" -> "生效时间"
_ZEROS = re.compile(r"^0+$")
_SERIAL = re.compile(r"^\d{5}(\.\d+)?$")  # days since 1899-12-30: 1927 to 2173


class SheetError(ValueError):
    """The file as a whole cannot be imported; `key` and `params` say why (messages.ZH_CN)."""

    def __init__(self, key: str, status: int = 422, **params: str | int) -> None:
        super().__init__(key)
        self.key, self.status, self.params = key, status, params


@dataclass(frozen=True, slots=True)
class Sheet:
    """The rows of an upload, its format, and columns it had that no pass field takes."""

    format: str
    rows: list[CsvRow]
    titles: dict[str, str] = field(default_factory=dict)  # field -> header as written
    ignored_columns: list[str] = field(default_factory=list)


def read_sheet(data: bytes, filename: str = "") -> Sheet:
    """XLSX or CSV by content (a name ending .xlsx must be one); raises SheetError."""
    if len(data) > MAX_BYTES:
        raise SheetError("import.error.file_too_large", 413, max_mb=MAX_BYTES // 2**20)
    if data.startswith(OLE_MAGIC):
        raise SheetError("import.error.xls_unsupported", 415)
    if data.startswith(XLSX_MAGIC):
        return _table("xlsx", _xlsx_cells(data))
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise SheetError("import.error.not_a_spreadsheet", 415)
    return _table("csv", _csv_cells(data))


def _csv_cells(data: bytes) -> Iterator[list[str]]:
    try:
        text = decode_csv(data)
    except CsvFormatError as exc:
        raise SheetError("import.error.encoding", 415) from exc
    except CsvTooLargeError as exc:
        raise SheetError("import.error.file_too_large", 413, max_mb=MAX_BYTES // 2**20) from exc
    if "\x00" in text:
        raise SheetError("import.error.not_a_spreadsheet", 415)
    try:
        yield from csv.reader(io.StringIO(text, newline=""))
    except csv.Error as exc:
        raise SheetError("import.error.not_a_spreadsheet", 415) from exc


def _check_zip(data: bytes) -> None:
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise SheetError("import.error.not_a_spreadsheet", 415) from exc
    unpacked = sum(m.file_size for m in members)
    if len(members) > MAX_MEMBERS or unpacked > MAX_UNPACKED:
        raise SheetError("import.error.unpacked_too_large", 413, max_mb=MAX_UNPACKED // 2**20)


def _xlsx_cells(data: bytes) -> Iterator[list[str]]:
    _check_zip(data)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.active
        rows = sheet.iter_rows(max_col=MAX_COLUMNS) if sheet is not None else iter(())
        for scanned, row in enumerate(rows, start=1):
            if scanned > MAX_SCANNED_ROWS:
                raise SheetError("import.error.too_many_rows", 413, max=MAX_ROWS)
            yield [cell_text(getattr(c, "value", None), getattr(c, "number_format", None))
                   for c in row]  # fmt: skip
    except SheetError:
        raise
    except Exception as exc:
        # Whatever a broken or hostile workbook makes openpyxl raise, it is the file's fault.
        raise SheetError("import.error.not_a_spreadsheet", 415) from exc


def cell_text(value: Any, number_format: str | None) -> str:
    """A cell as the text Excel shows for it: never 1.38e10, zeros kept per a `000…` format."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        return value.isoformat(sep="T", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        value = int(value)
    if isinstance(value, int):
        digits = str(value)
        fmt = number_format or ""
        return digits.zfill(len(fmt)) if _ZEROS.match(fmt) else digits
    if isinstance(value, float):
        return format(value, ".15g")
    return str(value)  # a string, or a type no sheet cell should hold


def _serial_time(cell: str) -> str:
    """A date Excel stored as its day number (a cell formatted General) as ISO text."""
    if not _SERIAL.match(cell.strip()):
        return cell
    when: datetime = from_excel(float(cell))
    return when.isoformat(sep="T", timespec="seconds")


def _field_of(header: str) -> str | None:
    name = _NOTE.sub("", header).strip()
    found = _BY_HEADER.get(name) or name.lower()
    return found if found in _KNOWN else None


def _header(cells: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Field per column ("" for ignored ones), field -> title, and the ignored titles."""
    names = [_field_of(c) or "" for c in cells]
    present = [n for n in names if n]
    missing = [TITLES[c] for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise SheetError("import.error.column_missing", columns="、".join(missing))
    repeated = sorted({TITLES[n] for n in present if present.count(n) > 1})
    if repeated:
        raise SheetError("import.error.column_repeated", columns="、".join(repeated))
    titles = {n: c.strip() for n, c in zip(names, cells, strict=True) if n}
    ignored = [c.strip() for n, c in zip(names, cells, strict=True) if not n and c.strip()]
    return names, titles, ignored


def _table(kind: str, cells: Iterable[list[str]]) -> Sheet:
    lines = iter(cells)
    first = next(lines, None)
    if first is None or not any(c.strip() for c in first):
        raise SheetError("import.error.empty")
    while not first[-1].strip():
        first = first[:-1]  # an XLSX row is padded to the sheet's width; a cell past it is extra
    names, titles, ignored = _header(first)
    rows: list[CsvRow] = []
    for number, line in enumerate(lines, start=2):
        if not any(c.strip() for c in line):
            continue  # Excel leaves rows of empty cells behind
        if len(rows) == MAX_ROWS:
            raise SheetError("import.error.too_many_rows", 413, max=MAX_ROWS)
        used = [_serial_time(c) if n in TIME_COLUMNS else c if n else ""
                for n, c in zip(names, line, strict=False)]  # fmt: skip
        fields = _fields(names, used)
        if isinstance(kind_cell := fields.get("kind"), str):
            fields["kind"] = kind_from_sheet(kind_cell)
        rows.append(CsvRow(number, fields, any(c.strip() for c in line[len(names) :])))
    return Sheet(kind, rows, titles, ignored)
