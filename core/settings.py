"""Settings: one validated object, built at start-up and passed down.

Sources, highest priority first: keyword arguments (tests), ``NEWSMON_*`` environment
variables, the TOML file named by ``NEWSMON_CONFIG`` (or ``--config``), defaults.

Owns: the names, types, defaults and validation of every setting, and how they are shown
with secrets masked. Must not: be instantiated at import time, or read anything but the
environment and the config file.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core import keys
from core.errors import SettingsError

ENV_PREFIX = "NEWSMON_"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
REDIS_SCHEMES = ("redis", "rediss", "unix")


class Settings(BaseSettings):
    """Every setting of newsmon. Environment variable = ``NEWSMON_`` + the upper-case name."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    redis_url: str | None = Field(
        default=None,
        description="External Redis (redis://, rediss://, unix://). Unset: embedded Redis.",
    )
    data_dir: Path = Field(default=Path("data"), description="Embedded Redis files live here.")
    api_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port the API listens on.")
    api_require_keys: bool = Field(
        default=False, description="Require an API key even while none exists."
    )
    api_cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (empty: CORS off)."
    )
    api_max_scan: int = Field(
        default=50_000, ge=100, description="Index members one item query examines at most."
    )
    ready_max_lag: int = Field(default=10_000, ge=0, description="/readyz: max consumer lag.")
    ready_max_dead_letters: int = Field(
        default=1_000, ge=0, description="/readyz: max dead-lettered entries per stream."
    )
    sse_keepalive_s: float = Field(default=15.0, gt=0, le=300, description="SSE keep-alive.")
    api_max_streams: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Live streams (/v1/stream) one API process serves at once; each holds a "
        "Redis connection. More are refused with 503 and Retry-After.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto", description="Event loop of the services: auto = uvloop when installed."
    )
    load_seeds: bool = Field(default=True, description="Load the baseline seeds at start-up.")
    seeds_dir: Path = Field(default=PROJECT_ROOT / "seeds")
    feeds_file: Path = Field(
        default=PROJECT_ROOT / "feeds.yaml", description="YAML feed list synced in at start-up."
    )
    allow_private_networks: bool = Field(
        default=False, description="Allow feed/webhook URLs on loopback or private addresses."
    )
    poll_tick_s: float = Field(default=5.0, ge=0.1, le=300, description="Scheduler tick.")
    poll_concurrency: int = Field(default=20, ge=1, le=1000, description="Feeds fetched at once.")
    fetch_timeout_s: float = Field(default=30.0, gt=0, description="Overall deadline per fetch.")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=15 * 1024 * 1024, ge=1024, description="Decoded cap.")
    host_spacing_s: float = Field(default=1.0, ge=0, description="Gap between requests to a host.")
    poll_workers: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Processes that poll feeds (fetch, parse, store) for one ingestor or "
        "`newsmon poll`: default one per core; 0: poll in the process itself.",
    )
    stream_maxlen: int = Field(
        default=keys.STREAM_MAXLEN, ge=1000, description="Approximate stream cap."
    )
    bus_batch: int = Field(default=100, ge=1, le=10_000, description="Entries read per call.")
    bus_block_ms: int = Field(default=1000, ge=10, le=60_000)
    claim_idle_ms: int = Field(
        default=60_000, ge=10, description="Reclaim entries idle this long from dead consumers."
    )
    max_deliveries: int = Field(
        default=5, ge=1, le=100, description="Deliveries before an entry is dead-lettered."
    )
    rules_file: Path | None = Field(
        default=None, description="Classifier rules YAML; unset: the packaged default."
    )
    classifier_engine: Literal["auto", "python", "compiled"] = Field(
        default="auto",
        description=(
            "Classifier engine: compiled (C, built at install when a C compiler is present), "
            "python, or auto (compiled when built)."
        ),
    )
    rules_reload_s: float = Field(
        default=2.0, ge=0, description="How often classifiers look for a changed rules file."
    )
    webhook_timeout_s: float = Field(
        default=15.0, gt=0, le=120, description="Deadline of one webhook attempt."
    )
    notifier_concurrency: int = Field(
        default=64, ge=1, le=1000, description="Deliveries in flight per notifier process."
    )
    notifier_lease_s: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="A delivery claimed by a notifier that dies is retried after this long "
        "(at least twice the webhook timeout).",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: no email.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "implicit", "none"] = Field(
        default="starttls",
        description="starttls: required, never plaintext; implicit: TLS on connect (465); "
        "none: plain SMTP to a local relay only.",
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="newsmon <newsmon@localhost>", description="From of alerts.")
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The API's public URL: one-click unsubscribe links in emails point here.",
    )
    consumer_name: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This process's name in consumer groups; keep it stable across restarts.",
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in REDIS_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(REDIS_SCHEMES)}, not {scheme!r}")
        return value

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
        config_file = os.environ.get(f"{ENV_PREFIX}CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by ``***``."""
        shown = self.model_dump(mode="json")
        if self.redis_url:
            shown["redis_url"] = mask_url(self.redis_url)
        return shown


def mask_url(url: str) -> str:
    """Hide the password of a URL (``redis://user:***@host``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# Settings that are no longer read, and what replaced them (named at start-up when set).
RETIRED: dict[str, str] = {
    "PARSE_WORKERS": "feeds are parsed by the poll workers now: see NEWSMON_POLL_WORKERS",
}


def retired_in_environment() -> list[str]:
    """One line for each retired setting still set in the environment."""
    return [
        f"{ENV_PREFIX}{name} is no longer read: {instead}"
        for name, instead in RETIRED.items()
        if f"{ENV_PREFIX}{name}" in os.environ
    ]


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build and validate the settings; raise ``SettingsError`` naming the first bad one."""
    if config_file is not None:
        if not config_file.is_file():
            raise SettingsError(f"{ENV_PREFIX}CONFIG", f"no such file: {config_file}")
        os.environ[f"{ENV_PREFIX}CONFIG"] = str(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as e:
        err = e.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "?"
        setting = f"{ENV_PREFIX}{name.upper()}"
        given = err.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        raise SettingsError(setting, f"{err['msg']}{shown}") from e
    except (OSError, ValueError) as e:  # unreadable or malformed TOML
        raise SettingsError(f"{ENV_PREFIX}CONFIG", str(e)) from e
