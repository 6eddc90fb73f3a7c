"""Settings read from a TOML file and overridden by MENJIN_<SECTION>__<KEY>; used by both sides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class StartupError(Exception):
    """A command cannot start; the message is the one sentence `menjin` prints about it."""


class ConfigError(StartupError):
    """A config file is missing or invalid; the message says which field and why."""


class TomlSettings(BaseSettings):
    """Base for a config file: environment beats file; relative paths resolve beside the file."""

    model_config = SettingsConfigDict(
        env_prefix="MENJIN_", env_nested_delimiter="__", extra="forbid"
    )
    _toml_path: ClassVar[Path | None] = None

    config_dir: Path = Field(Path("."), description="Directory relative paths are resolved in.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_path))
        return tuple(sources)

    def resolve(self, relative: str) -> Path:
        return (self.config_dir / relative).resolve()


S = TypeVar("S", bound=TomlSettings)


def load_settings(cls: type[S], path: Path) -> S:
    """Read a config file into cls; raises ConfigError with a readable message."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    from_file = type(f"{cls.__name__}FromFile", (cls,), {"_toml_path": path})
    try:
        loaded = from_file(config_dir=path.resolve().parent)
        return cls.model_validate(loaded.model_dump())
    except ValidationError as exc:
        raise ConfigError(f"{path}: {explain(exc)}") from exc
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def explain(exc: ValidationError) -> str:
    """Every field error on one line: `section.field: what is wrong (got the value)`."""
    return "; ".join(_field_error(err) for err in exc.errors())


def _field_error(err: ErrorDetails) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(file)"
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if err["type"] != "missing" and isinstance(value, str | int | float | bool):
        message += f" (got {value!r})"
    return f"{where}: {message}"


def render_toml(
    sections: dict[str, dict[str, Any]], arrays: dict[str, list[dict[str, Any]]]
) -> str:
    """Write simple TOML: flat tables, then arrays of flat tables; strings via JSON escaping."""
    lines: list[str] = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
        lines.append("")
    for name, items in arrays.items():
        for item in items:
            lines.append(f"[[{name}]]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
            lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
