from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from menjin.cli import build_app

runner = CliRunner()


def menjin(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(build_app(args[0]), list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def gate(tmp_path: Path) -> tuple[Path, Path]:
    keys = tmp_path / "keys"
    code, out, _ = menjin("keys", "init", str(keys))
    assert code == 0 and len(out.strip()) == 8
    config = tmp_path / "east.toml"
    code, _, err = menjin(
        "gate", "init", "--site", "hutong-12", "--gate", "east", "--keys", str(keys),
        "--direction", "in", "--temperature", "required", "--anti-passback", "hard",
        "--out", str(config),
    )  # fmt: skip
    assert code == 0, err
    return keys, config


def issue(keys: Path, *extra: str, start: str = "2026-01-01", end: str = "2027-01-01") -> str:
    code, out, err = menjin(
        "pass", "issue", "--keys", str(keys), "--site", "hutong-12", "--holder", "张三华",
        "--kind", "resident", "--valid-from", start, "--valid-until", end, *extra,
    )  # fmt: skip
    assert code == 0, err
    assert "\n" not in out.strip()
    return out.strip()


def present(config: Path, text: str, *extra: str) -> tuple[int, dict[str, object]]:
    code, out, err = menjin("gate", "present", text, "--config", str(config), *extra)
    assert code in (0, 1), err
    return code, json.loads(out)


def test_private_key_is_mode_0600(gate: tuple[Path, Path]) -> None:
    keys, _ = gate
    assert stat.S_IMODE((keys / "signing.key").stat().st_mode) == 0o600
    code, _, err = menjin("keys", "init", str(keys))
    assert code == 2 and "refusing to overwrite" in err


def test_present_journals_and_applies_anti_passback(gate: tuple[Path, Path]) -> None:
    keys, config = gate
    text = issue(keys)
    at = ("--at", "2026-06-01T09:00", "--temp", "36.5")
    code, out = present(config, text, *at)
    assert (code, out["granted"], out["reason"], out["seq"]) == (0, True, "ok", 1)
    code, out = present(config, text, *at)  # in twice without going out
    assert (code, out["reason"], out["seq"]) == (1, "passback", 2)


def test_dry_run_does_not_journal(gate: tuple[Path, Path]) -> None:
    keys, config = gate
    text = issue(keys)
    for _ in range(2):
        code, out = present(config, text, "--at", "2026-06-01T09:00", "--temp", "36.5", "--dry-run")
        assert (code, out["reason"], out["seq"]) == (0, "ok", None)


def test_time_without_offset_is_gate_local(gate: tuple[Path, Path]) -> None:
    keys, config = gate
    text = issue(keys, "--hours", "07:00-09:00")
    code, _ = present(config, text, "--at", "2026-06-01T08:00", "--temp", "36.5", "--dry-run")
    assert code == 0
    code, out = present(
        config, text, "--at", "2026-06-01T08:00+00:00", "--temp", "36.5", "--dry-run"
    )
    assert (code, out["reason"]) == (1, "outside_hours")


def test_fever_expired_and_revoked(gate: tuple[Path, Path]) -> None:
    keys, config = gate
    text = issue(keys)
    code, out = present(config, text, "--at", "2026-06-01T09:00", "--temp", "38.4")
    assert (code, out["reason"]) == (1, "fever")
    code, out = present(config, text, "--at", "2027-06-01T09:00", "--temp", "36.4")
    assert (code, out["reason"]) == (1, "expired")
    code, _, _ = menjin("gate", "revoke", str(out["pass_id"]), "--config", str(config))
    assert code == 0
    code, out = present(config, text, "--at", "2026-06-01T09:00", "--temp", "36.4")
    assert (code, out["reason"]) == (1, "revoked")


@pytest.mark.parametrize(
    "args",
    [
        ("gate", "present", "MJ1:X", "--config", "/nonexistent.toml"),
        ("gate", "revoke", "not-hex", "--config", "/nonexistent.toml"),
        ("pass", "issue", "--keys", "/nonexistent", "--site", "s", "--holder", "x",
         "--kind", "resident", "--valid-from", "2026-01-01", "--valid-until", "2027-01-01"),
        ("gate", "init", "--site", "s", "--gate", "g", "--keys", "/nonexistent",
         "--out", "/tmp/x.toml"),
    ],
)  # fmt: skip
def test_usage_and_config_errors_exit_2_with_a_message(args: tuple[str, ...]) -> None:
    code, _, err = menjin(*args)
    assert code == 2
    assert err.startswith("error: ") or "Usage" in err


def test_bad_config_field_is_named(gate: tuple[Path, Path], tmp_path: Path) -> None:
    _, config = gate
    bad = tmp_path / "bad.toml"
    bad.write_text(config.read_text().replace('temperature = "required"', 'temperature = "hot"'))
    code, _, err = menjin("gate", "present", "MJ1:X", "--config", str(bad))
    assert code == 2 and "gate.temperature" in err


def test_env_overrides_config(gate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    keys, config = gate
    text = issue(keys)
    monkeypatch.setenv("MENJIN_GATE__TEMPERATURE", "off")
    code, out = present(config, text, "--at", "2026-06-01T09:00", "--dry-run")
    assert (code, out["reason"]) == (0, "ok")


def test_bad_pass_arguments_are_explained(gate: tuple[Path, Path]) -> None:
    keys, _ = gate
    base = ("pass", "issue", "--keys", str(keys), "--site", "s", "--kind", "resident")
    cases = [
        (("--holder", "13812345678", "--valid-from", "2026-01-01", "--valid-until", "2027-01-01"),
         "phone or ID"),
        (("--holder", "x", "--valid-from", "tomorrow", "--valid-until", "2027-01-01"), "ISO 8601"),
        (("--holder", "x", "--valid-from", "2027-01-01", "--valid-until", "2026-01-01"), "before"),
        (("--holder", "x", "--valid-from", "2026-01-01", "--valid-until", "2027-01-01",
          "--days", "someday"), "weekday"),
    ]  # fmt: skip
    for extra, message in cases:
        code, _, err = menjin(*base, *extra)
        assert code == 2 and message in err, err


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_qr_file_is_written(gate: tuple[Path, Path], tmp_path: Path, suffix: str) -> None:
    keys, _ = gate
    qr = tmp_path / f"pass{suffix}"
    text = issue(keys, "--qr", str(qr))
    assert qr.stat().st_size > 100
    if suffix == ".png":  # what the gate's camera pipeline reads back is the pass, exactly
        from edge.devices.qr_decode import decode_frame, read_image

        assert decode_frame(read_image(qr)) == text


def test_console_script_runs_the_flow(gate: tuple[Path, Path]) -> None:
    keys, config = gate
    text = issue(keys)
    exe = Path(sys.executable).parent / "menjin"
    result = subprocess.run(
        [str(exe), "gate", "present", text, "--config", str(config), "--at", "2026-06-01T09:00",
         "--temp", "36.6"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["granted"] is True
