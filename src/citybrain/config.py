"""Settings: environment variables ``CITYBRAIN_*`` and an optional ``citybrain.toml``.

Everything is validated once at start; a bad value stops the start with one line that names
the setting (see ``cli.load_settings_or_exit``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# A secret that is obviously not secret; refused outside demo mode.
DEMO_SECRET_PLACEHOLDER = "demo-only-not-secret"
SUPPORTED_LANGUAGES = ("zh_CN", "en")


class SettingError(ValueError):
    """A setting with a bad value; ``str()`` is the one line shown to the operator."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        super().__init__(f"invalid setting CITYBRAIN_{name.upper()}: {reason}")


def _toml_path() -> Path:
    return Path(os.environ.get("CITYBRAIN_CONFIG", "citybrain.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYBRAIN_", extra="forbid")

    data_dir: Path = Field(default=Path("var"), description="Directory for the SQLite file and runtime files.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite under data_dir.")
    secret_key: str = Field(default="", description="Signs sessions and CSRF tokens; at least 32 characters.")
    demo_mode: bool = Field(default=False, description="Set by `citybrain demo`; allows a generated secret.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=32, description="uvicorn worker processes for `serve`.")
    default_language: Literal["zh_CN", "en"] = "zh_CN"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    session_max_age_s: int = Field(default=8 * 3600, ge=60, le=30 * 86400)
    cookie_secure: bool = Field(default=False, description="Mark cookies Secure (behind HTTPS).")
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_window_s: int = Field(default=900, ge=10, le=86400)
    login_lockout_s: int = Field(default=60, ge=1, le=86400)
    token_default_days: int = Field(default=30, ge=1, le=3650)
    base_tile_url: str = Field(default="", description="Optional base-map tile URL; off by default.")
    max_body_mb: int = Field(default=25, ge=1, le=1024, description="Largest request body accepted, in MB.")
    public_reports_per_hour: int = Field(
        default=20, ge=1, le=100_000, description="Anonymous citizen reports allowed per client address per hour."
    )
    mqtt_url: str = Field(
        default="",
        description="External MQTT broker (mqtt://user:pass@host:1883); empty runs the embedded broker.",
    )
    mqtt_port: int = Field(default=18830, ge=1, le=65535, description="Port of the embedded MQTT broker.")
    mqtt_host: str = Field(default="127.0.0.1", description="Address the embedded MQTT broker listens on.")
    mqtt_share_group: str = Field(
        default="citybrain", pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Shared-subscription group ($share/<group>/...) of ingestion workers on an external broker.",
    )
    ingest_enabled: bool = Field(default=True, description="Run MQTT ingestion inside `serve` (one worker).")
    iot_max_payload_kb: int = Field(default=256, ge=1, le=10_240, description="Largest MQTT/HTTP device message.")
    iot_max_future_s: int = Field(default=300, ge=0, le=86400, description="How far ahead a reading's ts may be.")
    data_max_upload_mb: int = Field(default=200, ge=1, description="Largest data file a department may load, in MB.")
    data_masking_file: str = Field(
        default="",
        description="TOML file of masking rules replacing the shipped data/masking.toml; empty = shipped.")

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
        path = _toml_path()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "sqlite+pysqlite://", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        if value and not value.startswith(("mqtt://", "mqtts://", "tcp://")):
            raise ValueError("must be an mqtt://[user:password@]host[:port] URL")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_length(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    def check_serving(self) -> None:
        """Serving needs a real secret; only demo mode may generate one (see cli.demo)."""
        if self.secret_key == DEMO_SECRET_PLACEHOLDER and not self.demo_mode:
            raise SettingError("secret_key", "the demo placeholder is refused outside demo mode")
        if not self.secret_key:
            raise SettingError(
                "secret_key",
                "must be set to serve (generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))')",
            )

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'citybrain.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def _check_config_file() -> None:
    """A config file named explicitly must exist, and any config file read must be valid TOML."""
    path = _toml_path()
    if os.environ.get("CITYBRAIN_CONFIG") and not path.is_file():
        raise SettingError("config", f"no such file: {path}")
    if path.is_file():
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingError("config", f"{path} is not valid TOML: {exc}") from None


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one ``SettingError`` naming the setting."""
    _check_config_file()
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        raise SettingError(name, f"{err['msg']} (got {err.get('input')!r})") from None
