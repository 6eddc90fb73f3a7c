"""The XLSX an office fills in: Chinese headers, an example row, a sheet explaining each column."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from central.holder_kinds import KIND_NAMES
from central.imports.sheet import TITLES
from central.passes_csv import REQUIRED_COLUMNS

_HELP = {
    "site": "小区编号（与门禁配置一致），例如 hutong-12",
    "holder": "住户真实姓名；卡片和二维码里只显示打码后的姓名",
    "kind": "、".join(z for z, _ in KIND_NAMES.values()),
    "valid_from": "例如 2026-12-01 08:00（北京时间）",
    "valid_until": "不含此刻；须晚于生效时间",
    "gates": "门的编号，多个用“;”分隔；留空为全部门",
    "hours": "例如 07:00-22:00；留空为全天",
    "days": "例如 mon-fri；留空为每天",
    "max_uses": "每个门最多使用次数；留空或 0 为不限",
    "unit": "例如 3号楼2单元501；同一人同一住址再次导入会更新而不会重复",
    "phone": "手机号；请保持“文本”格式，以免 Excel 把它变成科学计数法",
}
_TEXT_COLUMNS = ("gates", "unit", "phone", "hours", "days")
_TIME_FORMAT = "yyyy-mm-dd hh:mm"


def template_xlsx(site: str, zone: ZoneInfo, now: datetime) -> bytes:
    """The template workbook; its first (active) sheet is the one an import reads."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "通行证"
    fields = list(TITLES)
    sheet.append([TITLES[f] for f in fields])
    start = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    example = {"site": site, "holder": "张三", "kind": KIND_NAMES[next(iter(KIND_NAMES))][0],
               "valid_from": start, "valid_until": start + timedelta(days=365),
               "unit": "3号楼2单元501", "phone": "13812345678"}  # fmt: skip
    sheet.append([example.get(f) for f in fields])
    for column, name in enumerate(fields, start=1):
        letter = get_column_letter(column)
        sheet.cell(1, column).font = Font(bold=True)
        sheet.column_dimensions[letter].width = 18
        if name in _TEXT_COLUMNS:
            # Typed-in phones stay text instead of becoming 1.38E+10.
            sheet.column_dimensions[letter].number_format = "@"
            sheet.cell(2, column).number_format = "@"
        elif name in ("valid_from", "valid_until"):
            sheet.cell(2, column).number_format = _TIME_FORMAT
    sheet.freeze_panes = "A2"
    notes = book.create_sheet("说明")
    notes.append(["列", "必填", "说明"])
    for name in fields:
        notes.append([TITLES[name], "是" if name in REQUIRED_COLUMNS else "", _HELP[name]])
    notes.column_dimensions["C"].width = 60
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
