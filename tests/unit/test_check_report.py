"""The check catalogs and the table renderer: both languages complete, columns aligned."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from protocol.check_catalog import CATALOGS, EN, ZH_CN, Lang
from protocol.check_report import FAIL, OK, CheckLine, one_line, ready, render_table

ROOT = Path(__file__).resolve().parents[2]
CHECK_MODULES = ["edge/check.py", "edge/check_devices.py", "edge/check_network.py",
                 "central/check.py", "menjin/probes.py"]  # fmt: skip


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_both_languages_have_the_same_keys_and_fields() -> None:
    assert EN.keys() == ZH_CN.keys()
    for key, text in EN.items():
        assert fields(text) == fields(ZH_CN[key]), key


def _catalog_literals(module: str) -> set[str]:
    """String constants in a check module that look like catalog keys."""
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "CheckLine":
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
    return found


@pytest.mark.parametrize("module", CHECK_MODULES)
def test_every_literal_key_a_check_uses_is_in_the_catalog(module: str) -> None:
    for value in _catalog_literals(module):
        assert {value, f"check.{value}", f"hint.{value}"} & EN.keys(), (module, value)


def test_table_aligns_chinese_columns_and_counts_failures() -> None:
    ports = {"port": "/dev/ttyUSB9", "ports": "/dev/ttyUSB0"}
    lines = [
        CheckLine("config.file", OK, "config.ok", {"path": "east.toml"}),
        CheckLine("reader.open", FAIL, "port.missing", ports, "port.others"),
    ]
    table = render_table("title", lines, Lang.ZH_CN)
    rows = table.splitlines()
    assert rows[3].startswith("正常  配置文件  ") and rows[4].startswith("失败  读头      ")
    assert rows[5].strip() == "→ 现有的串口：/dev/ttyUSB0；把 port 改成正确的那个"
    assert rows[-1] == CATALOGS[Lang.ZH_CN]["summary.fix"].format(n=1)
    assert not ready(lines)
    assert one_line(lines[1]) == (
        "reader: /dev/ttyUSB9 does not exist (serial ports that exist: /dev/ttyUSB0; "
        "set the right one as port)"
    )
