"""The events export's XLSX writer: a zip whose sheet holds exactly the cells given."""

from __future__ import annotations

import io
import zipfile
from xml.etree import ElementTree

from central.xlsx import workbook

NS = {"s": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def test_cells_round_trip_with_chinese_markup_and_numbers() -> None:
    data = workbook(
        ["name", "n", "ok", "empty"], [["王*国 <&>", 38.6, True, None], ["b", 2, False, ""]]
    )
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert {"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"} <= set(
            z.namelist()
        )
        root = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
    rows = [
        ["".join(c.itertext()) for c in r.findall("s:c", NS)] for r in root.iterfind(".//s:row", NS)
    ]
    assert rows == [
        ["name", "n", "ok", "empty"],
        ["王*国 <&>", "38.6", "1", ""],
        ["b", "2", "0", ""],
    ]
