"""Gateway settings: the ``[gateway]`` table of config.toml, then ``MODELBUS_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from modelbus.config import ModelbusConfig
from modelbus.errors import ConfigError
from modelbus.validation import describe_validation_error


def default_database_url() -> str:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "modelbus"
    return f"sqlite:///{base / 'gateway.db'}"


class GatewaySettings(BaseModel):
    """Everything ``modelbus serve`` needs; all of it has an embedded default."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    database_url: str = Field(
        default_factory=default_database_url, description="SQLite by default; postgresql+psycopg://..."
    )
    master_key: SecretStr | None = Field(default=None, description="Admin API key; env MODELBUS_MASTER_KEY.")
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    compat: Literal["strict", "drop"] = Field(
        default="drop", description="Parameters a model lacks are dropped (and reported in a header)."
    )
    log_content: bool = Field(
        default=False, description="Log prompts/completions for every key (default off)."
    )
    log_requests: bool = True
    metrics_public: bool = Field(default=True, description="False: /metrics needs the master key.")
    otel: bool = Field(default=False, description="Emit OpenTelemetry spans (needs modelbus[otel]).")
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    default_max_output_tokens: int = Field(
        default=4096,
        ge=1,
        description="Output tokens reserved when neither request nor model table bounds it.",
    )

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ValueError(
                "must be sqlite:///<path> or postgresql+psycopg://user:password@host/dbname, "
                f"got a URL starting {value.split(':', 1)[0]!r}"
            )
        return value

    def database_display(self) -> str:
        """The database URL with any password masked (for banners and logs)."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)

    @classmethod
    def load(cls, config: ModelbusConfig, overrides: dict[str, Any] | None = None) -> GatewaySettings:
        raw: dict[str, Any] = dict(config.gateway)
        env = {
            "MODELBUS_MASTER_KEY": "master_key",
            "MODELBUS_DATABASE_URL": "database_url",
            "MODELBUS_HOST": "host",
            "MODELBUS_PORT": "port",
        }
        for var, key in env.items():
            if os.environ.get(var):
                raw[key] = os.environ[var]
        raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            message, _ = describe_validation_error(exc)
            raise ConfigError(f"invalid [gateway] settings in {config.source}: {message}") from None
