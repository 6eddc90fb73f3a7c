"""The two-step import of 5,000 rows through a real central, beside raw parses of the same files.

A central runs as a real process (`menjin central serve`, SQLite) on a private broker. One
XLSX and one CSV of the same 5,000 residents are uploaded over HTTP: the preview (upload,
parse, check, sign-to-size, plan against the stored passes) and the confirm (sign, insert,
audit, one transaction) are timed end to end by the client. The baselines, in the same run,
are raw openpyxl (read-only, values only) over the XLSX and the stdlib csv reader over the
CSV; python-calamine is timed as well when it is installed (the reader central did not pick).

Run: .venv/bin/python benchmarks/bench_import.py [--rows 5000]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _stack import Mosquitto, central_config, central_proc, make_keys, print_machine, wait_http
from openpyxl import Workbook, load_workbook

from central import auth
from central.auth import Role
from central.imports.sheet import TITLES
from central.store.db import make_engine, upgrade

PASSWORD = "bench-import-password"
PREVIEW_GOAL_S, IMPORT_GOAL_S = 5.0, 10.0
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文斌辉鹏飞宇浩然俊凯"


def name(i: int) -> str:
    return SURNAMES[i % 20] + GIVEN[i // 20 % len(GIVEN)] + GIVEN[i // 900 % len(GIVEN)]


def residents(count: int, days: int = 365) -> list[list[Any]]:
    start = datetime(2026, 12, 1, 8)
    return [
        ["hutong-12", name(i), "住户", start, start + timedelta(days=days), "east;west",
         None, None, None, f"{i // 400 + 1}号楼{i // 40 % 10 + 1}单元{i % 40 + 101}",
         13800000000 + i]
        for i in range(count)
    ]  # fmt: skip


def as_xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(list(TITLES.values()))
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def as_csv(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(TITLES.values()))
    for row in rows:
        writer.writerow(["" if c is None else c.strftime("%Y/%m/%d %H:%M")
                         if isinstance(c, datetime) else c for c in row])  # fmt: skip
    return out.getvalue().encode("gb18030")


def timed(what: str, fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"  {what:<44} {seconds:7.3f} s")
    return seconds, result


def raw_parses(xlsx: bytes, csv_data: bytes) -> dict[str, float]:
    def openpyxl_rows() -> int:
        book = load_workbook(io.BytesIO(xlsx), read_only=True, data_only=True)
        return sum(1 for _ in book.worksheets[0].iter_rows(values_only=True))

    def csv_rows() -> int:
        return sum(1 for _ in csv.reader(io.StringIO(csv_data.decode("gb18030"))))

    found = {"openpyxl": timed("raw openpyxl parse (XLSX)", openpyxl_rows)[0],
             "csv": timed("raw csv parse (CSV, GB18030)", csv_rows)[0]}  # fmt: skip
    try:
        from python_calamine import CalamineWorkbook
    except ImportError:
        print("  (python-calamine not installed: pip install python-calamine to compare)")
        return found

    def calamine_rows() -> int:
        return len(
            CalamineWorkbook.from_filelike(io.BytesIO(xlsx)).get_sheet_by_index(0).to_python()
        )

    found["calamine"] = timed("raw python-calamine parse (XLSX, not used)", calamine_rows)[0]
    return found


def upload(http: httpx.Client, headers: dict[str, str], data: bytes, name: str,
           ctype: str) -> dict[str, Any]:  # fmt: skip
    r = http.post("/api/v1/imports", files={"file": (name, data, ctype)}, headers=headers)
    r.raise_for_status()
    preview: dict[str, Any] = r.json()
    return preview


def confirm(http: httpx.Client, headers: dict[str, str], import_id: str) -> dict[str, Any]:
    r = http.post(f"/api/v1/imports/{import_id}/confirm", headers=headers)
    r.raise_for_status()
    result: dict[str, Any] = r.json()
    return result


def run(workdir: Path, count: int) -> bool:
    rows = residents(count)
    xlsx, csv_data = as_xlsx(rows), as_csv(rows)
    print(f"files: XLSX {len(xlsx) / 1024:.0f} KiB, CSV {len(csv_data) / 1024:.0f} KiB, "
          f"{count} rows each")  # fmt: skip
    raw = raw_parses(xlsx, csv_data)
    make_keys(workdir)
    db_url = f"sqlite:///{workdir / 'central.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        auth.create_user(conn, "admin", PASSWORD, Role.ADMIN, datetime.now(UTC))
    engine.dispose()
    broker = Mosquitto(workdir)
    broker.start()
    config = central_config(workdir, db_url, broker.url)
    port = int(tomllib.loads(config.read_text())["http"]["port"])
    central = central_proc(config).start()
    try:
        wait_http(port)
        changed = as_xlsx(residents(count, days=400))
        return measure(f"http://127.0.0.1:{port}", (xlsx, csv_data, changed), raw, count)
    finally:
        central.stop()
        broker.stop()


def measure(
    url: str, sheets: tuple[bytes, bytes, bytes], raw: dict[str, float], count: int
) -> bool:
    xlsx, csv_data, changed = sheets
    with httpx.Client(base_url=url, timeout=600) as http:
        login = {"username": "admin", "password": PASSWORD}
        token = http.post("/api/v1/auth/token", data=login).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        preview_s, shown = timed(
            "preview XLSX (new rows)", lambda: upload(http, h, xlsx, "r.xlsx", XLSX)
        )
        assert shown["counts"]["new"] == count, shown["counts"]
        import_s, done = timed(
            "confirm (import) XLSX", lambda: confirm(http, h, shown["import_id"])
        )
        assert done["created"] == count
        again_s, again = timed(
            "preview XLSX again (unchanged)", lambda: upload(http, h, xlsx, "r.xlsx", XLSX)
        )
        assert again["counts"]["unchanged"] == count, again["counts"]
        timed("confirm again (writes nothing)", lambda: confirm(http, h, again["import_id"]))
        csv_s, shown_csv = timed(
            "preview CSV (same people: unchanged)",
            lambda: upload(http, h, csv_data, "r.csv", "text/csv"),
        )
        assert shown_csv["counts"]["unchanged"] == count, shown_csv["counts"]
        _, moved = timed("preview XLSX, every validity changed",
                         lambda: upload(http, h, changed, "r.xlsx", XLSX))  # fmt: skip
        reissue_s, done = timed("confirm: re-issue all (sign, revoke old)",
                                lambda: confirm(http, h, moved["import_id"]))  # fmt: skip
        assert done["reissued"] == count, done
    print(f"ratios: preview XLSX / raw openpyxl {preview_s / raw['openpyxl']:.1f}x; "
          f"preview CSV / raw csv {csv_s / raw['csv']:.1f}x; "
          f"import / raw openpyxl {import_s / raw['openpyxl']:.1f}x")  # fmt: skip
    ok = max(preview_s, again_s) < PREVIEW_GOAL_S and max(import_s, reissue_s) < IMPORT_GOAL_S
    print(f"goal: preview < {PREVIEW_GOAL_S:.0f} s and import < {IMPORT_GOAL_S:.0f} s: "
          f"{'met' if ok else 'NOT met'}")  # fmt: skip
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    print_machine(sys.argv, {"rows": args.rows})
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        ok = run(Path(tmp), args.rows)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
