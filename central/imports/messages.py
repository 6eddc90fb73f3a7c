"""Why a row or a file cannot be imported: a message key with params, and its zh-CN text.

The console renders `key` + `params` through its catalogs (zh-CN, en); `ZH_CN` is the default
text the API sends along, so a client without catalogs still shows Chinese.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from central.holder_kinds import KIND_NAMES

ZH_CN: dict[str, str] = {
    "import.error.required": "“{column}”不能为空",
    "import.error.too_long": "“{column}”太长，最多 {max} 个字",
    "import.error.too_many": "“{column}”最多 {max} 项",
    "import.error.holder_invalid": "姓名看起来像电话或证件号，请填写真实姓名",
    "import.error.kind_invalid": "类别只能是：{allowed}",
    "import.error.time_invalid": "“{column}”不是有效的时间，例如 2026-12-01 08:00",
    "import.error.time_out_of_range": "“{column}”须在 1970 年至 2106 年之间",
    "import.error.until_before_from": "失效时间必须晚于生效时间",
    "import.error.phone_invalid": "手机号格式不正确（只能有数字、空格、“-”和开头的“+”）",
    "import.error.hours_invalid": "每日时段格式应为 08:00-18:00",
    "import.error.days_invalid": "星期格式应为 mon-fri 或 mon,wed,fri",
    "import.error.max_uses_invalid": "次数上限须是 0 到 65535 的整数（0 为不限）",
    "import.error.id_invalid": "“{column}”只能用字母、数字、“_”、“.”、“-”，最长 48 个",
    "import.error.invalid": "“{column}”的值无效",
    "import.error.extra_cells": "这一行的单元格比表头多",
    "import.error.duplicate_person": "与第 {first_row} 行是同一人同一住址",
    "import.error.pass_too_large": "内容太多，二维码放不下（门太多或名称太长）",
    "import.error.file_too_large": "文件太大，每次最多 {max_mb} MB，请拆分",
    "import.error.too_many_rows": "行数太多，每次最多 {max} 行，请拆分",
    "import.error.unpacked_too_large": "表格解压后太大（最多 {max_mb} MB），请删去多余内容",
    "import.error.not_a_spreadsheet": "无法读取：请上传 Excel（.xlsx）或 CSV 文件",
    "import.error.xls_unsupported": "这是旧版 .xls 文件，请在 Excel 中“另存为” .xlsx",
    "import.error.encoding": "CSV 文件既不是 UTF-8 也不是 GBK 编码",
    "import.error.empty": "文件是空的，第一行应为表头",
    "import.error.column_missing": "缺少必填列：{columns}",
    "import.error.column_repeated": "列重复：{columns}",
}

# Validation error fields -> the key used when the field has no more specific one.
_FIELD_KEYS = {
    "holder": "import.error.holder_invalid",
    "kind": "import.error.kind_invalid",
    "valid_from": "import.error.time_invalid",
    "valid_until": "import.error.time_invalid",
    "phone": "import.error.phone_invalid",
    "hours": "import.error.hours_invalid",
    "days": "import.error.days_invalid",
    "max_uses": "import.error.max_uses_invalid",
    "site": "import.error.id_invalid",
    "gates": "import.error.id_invalid",
}

_KIND_LIST = "、".join(zh for zh, _ in KIND_NAMES.values())


class Problem(BaseModel):
    """One reason, as a catalog key with params, plus its zh-CN text."""

    key: str = Field(description="Catalog key, e.g. import.error.phone_invalid.")
    params: dict[str, str | int] = Field(description="Values the catalog text interpolates.")
    message: str = Field(description="The zh-CN text, for clients without catalogs.")
    detail: str | None = Field(None, description="The validator's own (English) words, if any.")


def problem(key: str, detail: str | None = None, **params: str | int) -> Problem:
    return Problem(key=key, params=params, message=ZH_CN[key].format_map(params), detail=detail)


def file_problem(key: str, params: dict[str, str | int]) -> Problem:
    return problem(key, None, **params)


def _key_for(field: str, error: Any) -> tuple[str, dict[str, str | int]]:
    kind, msg, ctx = error["type"], error["msg"], error.get("ctx") or {}
    if kind == "missing":
        return "import.error.required", {}
    if kind == "string_too_long":
        return "import.error.too_long", {"max": int(ctx.get("max_length", 0))}
    if kind == "too_long":
        return "import.error.too_many", {"max": int(ctx.get("max_length", 0))}
    if "after valid_from" in msg:
        return "import.error.until_before_from", {}
    if "between 1970 and 2106" in msg:
        return "import.error.time_out_of_range", {}
    if field == "kind":
        return "import.error.kind_invalid", {"allowed": _KIND_LIST}
    return _FIELD_KEYS.get(field, "import.error.invalid"), {}


def problems_of(exc: ValidationError, titles: dict[str, str]) -> list[tuple[str | None, Problem]]:
    """(field, problem) for each error; `titles` names each field as the sheet's header does."""
    found = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else None
        key, params = _key_for(field or "", error)
        column = titles.get(field or "", field or "")
        detail = str(error["msg"]).removeprefix("Value error, ")
        found.append((field, problem(key, detail, column=column, **params)))
    return found
