"""Reading offices' sheets: numbers typed into phone cells, formulas, dates, headers, bombs."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from typing import Any

import pytest
from openpyxl import Workbook

from central.imports.messages import ZH_CN, problem
from central.imports.sheet import TITLES, SheetError, cell_text, read_sheet

HEADER = ["小区", "姓名", "类别", "生效时间", "失效时间", "手机号", "楼栋单元室"]


def xlsx(rows: list[list[Any]], formats: dict[str, str] | None = None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    for ref, fmt in (formats or {}).items():
        sheet[ref].number_format = fmt
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_cached_formula(data: bytes, ref: str, formula: str, cached: str) -> bytes:
    """Put a formula with Excel's cached result into a cell (openpyxl writes no cached values)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                cell = f'<c r="{ref}" t="str"><f>{formula}</f><v>{cached}</v></c>'
                body = re.sub(rf'<c r="{ref}"[^>]*?(/>|>.*?</c>)', cell, body.decode()).encode()
            dst.writestr(item, body)
    return out.getvalue()


def test_numbers_in_phone_and_unit_cells_come_back_as_their_digits() -> None:
    data = xlsx(
        [
            HEADER,
            [
                "h1",
                "张三",
                "住户",
                datetime(2026, 12, 1, 8),
                datetime(2027, 12, 1),
                13812345678,
                501,
            ],
            ["h1", "李四", "访客", datetime(2026, 12, 1), datetime(2026, 12, 2), 13812345678.0, 3],
            [
                "h1",
                "王五",
                "租户",
                datetime(2026, 12, 1),
                datetime(2026, 12, 2),
                1234567890,
                "0301",
            ],
        ],
        formats={"F4": "00000000000"},
    )
    rows = read_sheet(data, "passes.xlsx").rows
    assert [r.fields["phone"] for r in rows] == ["13812345678", "13812345678", "01234567890"]
    assert [r.fields["unit"] for r in rows] == ["501", "3", "0301"]
    assert rows[0].fields["valid_from"] == "2026-12-01T08:00:00"
    assert [r.fields["kind"] for r in rows] == ["resident", "visitor", "tenant"]


def test_a_cell_past_the_last_header_is_flagged_not_dropped() -> None:
    row = ["h1", "张三", "住户", datetime(2026, 12, 1), datetime(2027, 1, 1), "138", "1"]
    rows = read_sheet(xlsx([HEADER, [*row, "lost?"], row])).rows
    assert [r.extra_cells for r in rows] == [True, False]


def test_formulas_are_read_by_their_cached_value() -> None:
    data = xlsx([HEADER, ["h1", "张三", "住户", datetime(2026, 12, 1), datetime(2027, 1, 1),
                          0, "1-1"]])  # fmt: skip
    data = with_cached_formula(data, "F2", "CONCATENATE(&quot;138&quot;,&quot;1&quot;)",
                               "13800000001")  # fmt: skip
    assert read_sheet(data).rows[0].fields["phone"] == "13800000001"


def test_a_date_stored_as_its_day_number_is_a_date() -> None:
    data = xlsx([HEADER, ["h1", "张三", "住户", 46357.5, "2027-01-01 00:00", "138", "1"]])
    assert read_sheet(data).rows[0].fields["valid_from"] == "2026-12-01T12:00:00"


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [(13812345678, "General", "13812345678"), (1.3812345678e10, "General", "13812345678"),
     (42, "0000", "0042"), (3.25, "General", "3.25"), (None, "General", ""),
     (True, "General", "TRUE")],
)  # fmt: skip
def test_cell_text(value: object, fmt: str, text: str) -> None:
    assert cell_text(value, fmt) == text


def test_english_headers_notes_in_headers_and_unknown_columns() -> None:
    csv = (
        "site,holder（姓名）*,kind,valid_from,valid_until,备注\n"
        "h1,张三,resident,2026-12-01,2027-01-01,x\n"
    )
    sheet = read_sheet(csv.encode())
    assert sheet.format == "csv" and sheet.ignored_columns == ["备注"]
    assert sheet.rows[0].fields["holder"] == "张三" and "备注" not in sheet.rows[0].fields


def test_gb18030_csv_with_chinese_headers() -> None:
    csv = ",".join(HEADER) + "\nh1,张三,快递,2026/12/1 8:00,2026/12/31,13812345678,3-2-501\n"
    row = read_sheet(csv.encode("gb18030")).rows[0]
    assert row.fields["kind"] == "delivery" and row.fields["valid_from"] == "2026-12-01T08:00:00"


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return out.getvalue()


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol3;</t></is></c></row></sheetData></worksheet>'
)


@pytest.mark.parametrize(
    ("data", "name", "key", "status"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.xls", "xls_unsupported", 415),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "photo.xlsx", "not_a_spreadsheet", 415),
        (bytes(range(256)) * 8, "x.csv", "encoding", 415),
        (b"PK\x03\x04 not really a zip", "x.xlsx", "not_a_spreadsheet", 415),
        (_zip({"hello.txt": b"hi"}), "x.xlsx", "not_a_spreadsheet", 415),
        (_zip({"xl/worksheets/sheet1.xml": b"\0" * (65 * 2**20)}), "x.xlsx",
         "unpacked_too_large", 413),
        (b"", "x.csv", "empty", 422),
        (b"site,holder\nh1,x\n", "x.csv", "column_missing", 422),
        ("site,holder,kind,valid_from,valid_until,phone,手机号\n".encode(), "x.csv",
         "column_repeated", 422),
    ],
)  # fmt: skip
def test_hostile_or_wrong_files_are_refused_whole(
    data: bytes, name: str, key: str, status: int
) -> None:
    with pytest.raises(SheetError) as caught:
        read_sheet(data, name)
    assert (caught.value.key, caught.value.status) == (f"import.error.{key}", status)
    assert ZH_CN[caught.value.key]


def test_an_xml_bomb_in_the_workbook_is_refused() -> None:
    good = xlsx([HEADER])
    src = zipfile.ZipFile(io.BytesIO(good))
    bomb = {i.filename: src.read(i) for i in src.infolist()}
    bomb["xl/worksheets/sheet1.xml"] = LAUGHS
    with pytest.raises(SheetError) as caught:
        read_sheet(_zip(bomb), "x.xlsx")
    assert caught.value.key == "import.error.not_a_spreadsheet"
    causes = []
    exc: BaseException | None = caught.value
    while exc is not None:
        causes.append(type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    assert "EntitiesForbidden" in causes  # defusedxml refused it, not a parse accident


def test_every_message_renders_in_chinese() -> None:
    params = {"column": "手机号", "max": 3, "allowed": "住户", "first_row": 2, "max_mb": 5,
              "columns": "姓名"}  # fmt: skip
    for key in ZH_CN:
        text = problem(key, None, **params).message
        assert "{" not in text and re.search(r"[\u4e00-\u9fff]", text), key
    assert set(TITLES) >= {"phone", "holder"}
