"""The two-step import through a real central over HTTP: preview, confirm, idempotent re-import."""

from __future__ import annotations

import io
import os
from datetime import datetime, timedelta
from typing import Any

from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from central.auth import Role
from central.imports.sheet import TITLES
from central.store import sync_store
from central.store.tables import audit, passes
from tests.integration.office_helpers import SHANGHAI, SITE, Office

URL = "/api/v1/imports"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = ["小区", "姓名", "类别", "生效时间", "失效时间", "楼栋单元室", "手机号", "备注"]


def _start() -> datetime:
    return datetime.now(SHANGHAI).replace(tzinfo=None, minute=0, second=0, microsecond=0)


def person(name: str, unit: str, **changes: Any) -> list[Any]:
    start = _start()
    row = {"site": SITE, "holder": name, "kind": "住户", "from": start,
           "until": start + timedelta(days=365), "unit": unit, "phone": 13812345678,
           "note": "门卫认识"} | changes  # fmt: skip
    return list(row.values())


def workbook(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in [HEADER, *rows]:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def courtyard(tag: str) -> list[list[Any]]:
    """Three good rows and two bad ones (rows 5 and 6)."""
    return [
        person("张三华", f"{tag}-1-101"),
        person("李四", f"{tag}-1-102", phone="139 1234 5678"),
        person("王五", f"{tag}-2-201", kind="访客"),
        person("赵六", f"{tag}-2-202", phone="13812abc"),
        person("钱七", f"{tag}-3-301", **{"until": _start() - timedelta(days=1)}),
    ]


def upload(office: Office, data: bytes, name: str = "courtyard.xlsx", role: Role = Role.ADMIN,
           ctype: str = XLSX) -> Any:  # fmt: skip
    files = {"file": (name, data, ctype)}
    return office.http.post(URL, files=files, headers=office.as_(role))


def preview(office: Office, data: bytes) -> dict[str, Any]:
    r = upload(office, data)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def confirm(office: Office, import_id: str) -> dict[str, Any]:
    r = office.http.post(f"{URL}/{import_id}/confirm", headers=office.as_(Role.ADMIN))
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def stored(office: Office, tag: str) -> int:
    with office.engine.connect() as conn:
        query = select(func.count()).select_from(passes).where(passes.c.unit.startswith(tag))
        return int(conn.execute(query).scalar_one())


def test_preview_lists_the_errors_and_nothing_is_stored_until_confirm(office: Office) -> None:
    data = workbook(courtyard("A"))
    shown = preview(office, data)
    assert shown["format"] == "xlsx" and shown["ignored_columns"] == ["备注"]
    assert shown["counts"] == {"new": 3, "update": 0, "unchanged": 0, "error": 2}
    outcomes = [(r["row"], r["outcome"]) for r in shown["rows"]]
    assert outcomes == [(2, "new"), (3, "new"), (4, "new"), (5, "error"), (6, "error")]
    phone_error = shown["rows"][3]["errors"][0]
    assert (phone_error["field"], phone_error["column"]) == ("phone", "手机号")
    assert phone_error["problem"]["key"] == "import.error.phone_invalid"
    assert "手机号" in phone_error["problem"]["message"]
    until_error = shown["rows"][4]["errors"][0]["problem"]
    assert until_error["key"] == "import.error.until_before_from", until_error
    assert stored(office, "A-") == 0  # nothing written by the preview
    done = confirm(office, shown["import_id"])
    assert (done["created"], done["skipped"], len(done["passes"])) == (3, 2, 3)
    assert stored(office, "A-") == 3
    found = office.http.get("/api/v1/passes", params={"q": "A-1-102"},
                            headers=office.as_(Role.ADMIN)).json()["items"]  # fmt: skip
    assert [(p["holder"], p["phone"], p["kind"]) for p in found] == [
        ("李四", "139 1234 5678", "resident")
    ]


def test_importing_the_same_sheet_again_changes_nothing(office: Office) -> None:
    data = workbook(courtyard("B"))
    confirm(office, preview(office, data)["import_id"])
    again = preview(office, data)
    assert again["counts"] == {"new": 0, "update": 0, "unchanged": 3, "error": 2}
    done = confirm(office, again["import_id"])
    assert (done["created"], done["updated"], done["passes"], done["revoked"]) == (0, 0, [], [])
    assert stored(office, "B-") == 3
    with office.engine.connect() as conn:
        row = conn.execute(select(audit).where(audit.c.target == again["import_id"])).one()
    assert row.action == "pass.import" and row.details["unchanged"] == 3


def test_a_changed_row_updates_the_person_and_reissues_only_where_validity_changed(
    office: Office,
) -> None:
    first = [person("孙八", "C-1-101"), person("周九", "C-1-102")]
    made = confirm(office, preview(office, workbook(first))["import_id"])["passes"]
    later = _start() + timedelta(days=30)
    second = [
        person("孙八", "C-1-101", phone="13900000000"),
        person("周九", "C-1-102", until=later),
    ]
    shown = preview(office, workbook(second))
    rows = {r["holder"]: r for r in shown["rows"]}
    assert (rows["孙八"]["outcome"], rows["孙八"]["changes"], rows["孙八"]["reissue"]) == (
        "update", ["phone"], False)  # fmt: skip
    assert (rows["周九"]["changes"], rows["周九"]["reissue"]) == (["valid_until"], True)
    done = confirm(office, shown["import_id"])
    assert (done["updated"], done["reissued"], done["revoked"]) == (2, 1, [made[1]])
    admin = office.as_(Role.ADMIN)
    kept = office.http.get(f"/api/v1/passes/{made[0]}", headers=admin).json()
    assert (kept["status"], kept["phone"]) == ("active", "13900000000")
    old = office.http.get(f"/api/v1/passes/{made[1]}", headers=admin).json()
    new = office.http.get(f"/api/v1/passes/{done['passes'][0]}", headers=admin).json()
    assert old["status"] == "revoked" and new["status"] == "active"
    assert datetime.fromisoformat(new["valid_until"]) == later.replace(tzinfo=SHANGHAI)
    assert preview(office, workbook(second))["counts"]["unchanged"] == 2


def test_csv_in_gbk_with_chinese_headers_goes_the_same_way(office: Office) -> None:
    csv = ",".join(HEADER[:-1]) + f"\n{SITE},吴十,快递,2026/12/1 8:00,2036/12/1,D-1-1,13812345678\n"
    shown = preview_named(office, csv.encode("gb18030"), "passes.csv", "text/csv")
    assert shown["format"] == "csv" and shown["counts"]["new"] == 1
    assert confirm(office, shown["import_id"])["created"] == 1


def preview_named(office: Office, data: bytes, name: str, ctype: str) -> dict[str, Any]:
    r = upload(office, data, name, ctype=ctype)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def test_confirm_happens_once_and_refuses_a_stale_preview(office: Office) -> None:
    shown = preview(office, workbook([person("郑十一", "E-1-1")]))
    stale = preview(office, workbook([person("郑十一", "E-1-1")]))
    confirm(office, shown["import_id"])
    admin = office.as_(Role.ADMIN)
    assert office.http.post(f"{URL}/{shown['import_id']}/confirm", headers=admin).status_code == 404
    r = office.http.post(f"{URL}/{stale['import_id']}/confirm", headers=admin)
    assert r.status_code == 409  # the person got a pass after this preview was made
    assert stored(office, "E-") == 1
    assert (
        office.http.post(f"{URL}/{os.urandom(12).hex()}/confirm", headers=admin).status_code == 404
    )


def test_hostile_uploads_are_clear_4xx(office: Office) -> None:
    cases = [
        (b"x" * (5 * 2**20 + 1), "big.csv", 413, "file_too_large"),
        (b"\x89PNG\r\n\x1a\n" + os.urandom(4000), "photo.xlsx", 415, "not_a_spreadsheet"),
        (b"PK\x03\x04" + os.urandom(4000), "broken.xlsx", 415, "not_a_spreadsheet"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "old.xls", 415, "xls_unsupported"),
        (_bomb(), "bomb.xlsx", 413, "unpacked_too_large"),
        (_too_many_rows(), "many.csv", 413, "too_many_rows"),
        (b"site,holder\n", "cols.csv", 422, "column_missing"),
    ]  # fmt: skip
    for data, name, code, key in cases:
        r = upload(office, data, name)
        assert r.status_code == code, (name, r.text[:300])
        detail = r.json()["detail"]
        assert detail["key"] == f"import.error.{key}" and detail["message"], name
    assert upload(office, workbook([]), role=Role.GUARD).status_code == 403


def _bomb() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b"<" + b" " * (80 * 2**20) + b">")
    return out.getvalue()


def _too_many_rows() -> bytes:
    line = f"{SITE},张三,resident,2026-12-01,2027-12-01\n"
    return ("site,holder,kind,valid_from,valid_until\n" + line * 10_001).encode()


def test_the_template_has_chinese_headers_and_its_example_imports(office: Office) -> None:
    r = office.http.get(f"{URL}/template.xlsx", headers=office.as_(Role.ADMIN))
    assert r.status_code == 200 and r.headers["content-type"] == XLSX
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert sheet is not None
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == list(TITLES.values()) and rows[1][0] == SITE and rows[1][1] == "张三"
    shown = preview(office, r.content)
    assert shown["counts"]["new"] == 1 and shown["rows"][0]["errors"] == []
    assert (
        office.http.get(f"{URL}/template.xlsx", headers=office.as_(Role.GUARD)).status_code == 403
    )


def test_a_row_too_large_for_a_qr_code_is_an_error_in_the_preview(office: Office) -> None:
    gates = ";".join(f"gate-with-a-long-name-{i:02d}" for i in range(20))
    rows = [person("蒋十六", "F-1-1"), person("沈十七", "F-1-2"), person("韩十八", "F-1-3")]
    sheet = [[*HEADER, "可通行的门"], rows[0] + ["east"], rows[1] + [gates], rows[2] + ["west"]]
    book = Workbook()
    ws = book.active
    assert ws is not None
    for row in sheet:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    shown = preview(office, out.getvalue())
    assert [r["outcome"] for r in shown["rows"]] == ["new", "error", "new"]
    assert shown["rows"][1]["errors"][0]["problem"]["key"] == "import.error.pass_too_large"


def test_reissue_by_import_revokes_a_pass_whose_revocation_was_lifted(office: Office) -> None:
    made = confirm(office, preview(office, workbook([person("杨十九", "G-1-1")]))["import_id"])
    old = made["passes"][0]
    admin = office.as_(Role.ADMIN)
    office.http.post(f"/api/v1/passes/{old}/revoke", json={"reason": "mistake"},
                     headers=admin).raise_for_status()  # fmt: skip
    with office.engine.begin() as conn:
        assert sync_store.unrevoke(conn, old) is not None  # the office lifted it again
    later = _start() + timedelta(days=90)
    done = confirm(office, preview(office, workbook([person("杨十九", "G-1-1", until=later)]))[
        "import_id"])  # fmt: skip
    assert done["revoked"] == [old]
    shown = office.http.get(f"/api/v1/passes/{old}", headers=admin).json()
    assert (shown["status"], shown["revoke_reason"]) == ("revoked", "re-issued by import")
