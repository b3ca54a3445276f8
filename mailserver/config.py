"""The one configuration of a govmail instance: a TOML file, overridable by the environment.

Every key can be overridden by an environment variable ``GOVMAIL_<SECTION>__<KEY>`` (for example
``GOVMAIL_SMTP__MX_LISTEN=127.0.0.1:2525``). Relative paths are relative to the directory of the
config file. deploy/CONFIG.md documents every key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mailserver.config_keys import (
    ConfigSection,
    config_key_names,
    unknown_environment_keys,
    unknown_key_message,
    unknown_key_messages,
)
from mailserver.filter_config import (
    ClamdSection,
    DKIMSection,
    DNSSection,
    FiltersSection,
    SpamdSection,
)

DEFAULT_CONFIG_NAME = "govmail.toml"


def parse_listen(value: str) -> tuple[str, int]:
    """Split a "host:port" listener address (IPv6 hosts in brackets) into its parts."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listener {value!r} is not host:port")
    host = host.strip("[]")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"listener {value!r}: port out of range")
    return host, number


def _check_listen(value: str) -> str:
    if value:
        parse_listen(value)
    return value


class ServerSection(ConfigSection):
    """Identity of this instance and where its state lives."""

    hostname: str = "localhost"
    data_dir: Path = Path(".")
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 30.0
    workers: int = Field(default=0, ge=0)  # serving processes; 0: one per CPU core


class DatabaseSection(ConfigSection):
    """The metadata database: SQLite by default, PostgreSQL by URL."""

    url: str = ""  # empty: sqlite at <data_dir>/govmail.sqlite3
    writer_threads: int = 0  # 0: one per process (group commit batches the rest)
    reader_threads: int = 4
    group_commit_max: int = 128


class StorageSection(ConfigSection):
    """Message bytes on disk."""

    blob_dir: Path = Path("blobs")
    default_quota_mb: int = 2048
    fsync: bool = True
    # Messages up to this size are committed inside their delivery's transaction and written to
    # their blob file later by the spiller (storage.inline_blobs); 0: always a file first.
    inline_blob_max_bytes: int = Field(default=131072, ge=0)
    spill_batch: int = Field(default=64, ge=1)  # blobs written per chunk of the spiller
    spill_busy_pause_seconds: float = Field(default=1.0, ge=0)  # between chunks, mail coming in
    spill_poll_seconds: float = Field(default=5.0, gt=0)  # look for other processes' blobs
    spill_quiet_seconds: float = Field(default=0.25, ge=0)  # "busy" until this after a write


class AuthSection(ConfigSection):
    """Password hashing (argon2id) and lockout rules shared by SMTP and IMAP."""

    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    max_failed_logins: int = 12
    # A lock by failed logins is lifted at the next login attempt this long after it; 0: only
    # an admin unlocks (the provincial rule).
    auto_unlock_minutes: int = Field(default=0, ge=0)
    password_max_age_days: int = 180  # provincial rule: change every 6 months; 0 = never
    failed_login_delay_seconds: float = 1.0
    # Password spraying: many accounts tried from one address. Counted per client IP.
    max_failures_per_ip: int = 30
    ip_failure_window_seconds: float = 900.0


class TLSSection(ConfigSection):
    """Certificate and key; a self-signed pair is made at init when none is given."""

    cert_file: Path = Path("tls/cert.pem")
    key_file: Path = Path("tls/key.pem")


class SMTPSection(ConfigSection):
    """SMTP listeners and limits."""

    mx_listen: str = "127.0.0.1:2525"
    submission_listen: str = "127.0.0.1:2587"
    submissions_listen: str = "127.0.0.1:2465"
    max_message_size: int = 40 * 1024 * 1024
    max_recipients: int = 100
    command_timeout_seconds: float = 300.0
    max_connections_per_ip: int = 20
    # A compromised account: more than this many recipients in outside domains in the window
    # (a message to 100 of them counts 100) locks it and alerts the admins.
    outbound_limit_recipients: int = 250
    outbound_limit_window_seconds: float = 600.0
    admin_alert_addresses: list[str] = Field(default_factory=list)
    # Aliases never forward automatically to domains outside these suffixes (or local ones).
    government_domain_suffixes: list[str] = Field(default_factory=lambda: ["gov.vn"])

    _v = field_validator("mx_listen", "submission_listen", "submissions_listen")(_check_listen)


class QueueSection(ConfigSection):
    """The outbound queue: retries, warnings, workers."""

    workers: int = 4
    lifetime_seconds: float = 5 * 24 * 3600.0
    delay_warning_seconds: float = 4 * 3600.0
    retry_base_seconds: float = 300.0
    retry_max_seconds: float = 4 * 3600.0
    poll_seconds: float = 5.0
    claim_seconds: float = 600.0
    connect_timeout_seconds: float = 30.0
    command_timeout_seconds: float = 300.0
    idle_connection_seconds: float = 30.0
    keep_done_seconds: float = 7 * 24 * 3600.0


class Route(ConfigSection):
    """One static route: mail for ``domain`` (exact) or ``.suffix`` goes to host:port."""

    domain: str
    host: str
    port: int = 25
    tls: Literal["required", "opportunistic", "none"] = "opportunistic"
    verify_certificate: bool = False
    ca_file: Path | None = None


class RoutingSection(ConfigSection):
    """Where outbound mail goes: the static table first, then DNS MX."""

    routes: list[Route] = Field(default_factory=list)
    mx_port: int = 25
    dns_timeout_seconds: float = 10.0


class IMAPSection(ConfigSection):
    """IMAP listeners and limits."""

    listen: str = "127.0.0.1:2143"
    tls_listen: str = "127.0.0.1:2993"
    max_line_length: int = 64 * 1024
    max_literal_size: int = 64 * 1024 * 1024
    autologout_seconds: float = 30 * 60.0
    max_connections_per_ip: int = 50
    # LOGIN/AUTHENTICATE before TLS (RFC 9051 6.2.3): "loopback" (only from 127.0.0.0/8, ::1),
    # "always", or "never"; refused ones get LOGINDISABLED and NO [PRIVACYREQUIRED].
    allow_plaintext_auth: Literal["loopback", "always", "never"] = "loopback"

    _v = field_validator("listen", "tls_listen")(_check_listen)


class AdminAPISection(ConfigSection):
    """The admin HTTP API."""

    listen: str = "127.0.0.1:8080"
    public_url: str = ""  # how users reach the API (set-password links); empty: from listen
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)  # JSON bodies, before any parsing
    max_import_bytes: int = Field(default=10 * 1024 * 1024, ge=1)  # the staff CSV import

    _v = field_validator("listen")(_check_listen)


class ClientsSection(ConfigSection):
    """What mail clients are told (autoconfiguration, SRV records): the public host and ports,
    which differ from the listeners behind NAT or a port-forwarding firewall."""

    hostname: str = ""  # empty: server.hostname
    web_hostname: str = ""  # serves autoconfig/autodiscover over HTTPS; empty: clients hostname
    imap_port: int = Field(default=0, ge=0, le=65535)  # 0: imap.listen's port; off if no listener
    imaps_port: int = Field(default=0, ge=0, le=65535)
    submission_port: int = Field(default=0, ge=0, le=65535)
    submissions_port: int = Field(default=0, ge=0, le=65535)


class ProvisioningSection(ConfigSection):
    """Bulk provisioning, one-time set-password links and leavers (admin API and CLI)."""

    leaver_retention_days: int = Field(default=90, ge=0)
    setup_link_hours: int = Field(default=72, ge=1)
    hash_workers: int = Field(default=0, ge=0)  # 0: one per core
    initial_password_time_cost: int = Field(default=1, ge=1)


class SearchSection(ConfigSection):
    """The SQLite text search index, kept by a background indexer (storage/text_indexer.py)."""

    index_batch: int = Field(default=64, ge=1)  # rows per write job
    index_pause_seconds: float = Field(default=0.01, ge=0)  # before each job
    index_busy_pause_seconds: float = Field(default=1.0, ge=0)  # instead, while mail comes in
    index_quiet_seconds: float = Field(default=0.25, ge=0)  # "busy" until this after a write
    index_poll_seconds: float = Field(default=5.0, gt=0)  # look for other processes' mail


class GovmailConfig(BaseSettings):
    """The whole configuration; sections mirror the TOML tables."""

    model_config = SettingsConfigDict(
        env_prefix="GOVMAIL_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    server: ServerSection = Field(default_factory=ServerSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    auth: AuthSection = Field(default_factory=AuthSection)
    tls: TLSSection = Field(default_factory=TLSSection)
    smtp: SMTPSection = Field(default_factory=SMTPSection)
    imap: IMAPSection = Field(default_factory=IMAPSection)
    queue: QueueSection = Field(default_factory=QueueSection)
    routing: RoutingSection = Field(default_factory=RoutingSection)
    admin_api: AdminAPISection = Field(default_factory=AdminAPISection)
    clients: ClientsSection = Field(default_factory=ClientsSection)
    provisioning: ProvisioningSection = Field(default_factory=ProvisioningSection)
    search: SearchSection = Field(default_factory=SearchSection)
    filters: FiltersSection = Field(default_factory=FiltersSection)
    dns: DNSSection = Field(default_factory=DNSSection)
    dkim: DKIMSection = Field(default_factory=DKIMSection)
    spamd: SpamdSection = Field(default_factory=SpamdSection)
    clamd: ClamdSection = Field(default_factory=ClamdSection)

    config_path: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (the file's values arrive as init kwargs).
        return (env_settings, init_settings)

    # Paths resolved against the config file's directory.
    @property
    def data_dir(self) -> Path:
        base = self.config_path.parent if self.config_path else Path.cwd()
        return (base / self.server.data_dir).resolve()

    def in_data_dir(self, path: Path) -> Path:
        return path if path.is_absolute() else self.data_dir / path

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'govmail.sqlite3'}"

    @property
    def blob_dir(self) -> Path:
        return self.in_data_dir(self.storage.blob_dir)

    @property
    def cert_file(self) -> Path:
        return self.in_data_dir(self.tls.cert_file)

    @property
    def key_file(self) -> Path:
        return self.in_data_dir(self.tls.key_file)

    @property
    def dkim_key_dir(self) -> Path:
        return self.in_data_dir(self.dkim.key_dir)

    @property
    def spamd_dir(self) -> Path:
        """Where a managed spamd has its socket and its helpers' home."""
        return self.data_dir / "spamd"

    @property
    def spamd_address(self) -> str:
        """Where the spam check finds spamd: the managed one's socket, or ``spamd.address``."""
        if self.spamd.managed:
            return str(self.spamd_dir / "spamd.sock")
        return self.spamd.address


class ConfigError(Exception):
    """The configuration file is missing or invalid."""


def find_config_path(explicit: Path | None) -> Path:
    """--config, then $GOVMAIL_CONFIG, then ./govmail.toml."""
    if explicit is not None:
        return explicit
    env = os.environ.get("GOVMAIL_CONFIG")
    if env:
        return Path(env)
    return Path.cwd() / DEFAULT_CONFIG_NAME


def unknown_keys_outside_fields(data: dict[str, Any]) -> list[str]:
    """Unknown keys pydantic cannot see: fields that are not config keys (``config_path``) set in
    the file, and ``GOVMAIL_<SECTION>__<KEY>`` variables naming no key."""
    internal = set(GovmailConfig.model_fields) - set(config_key_names(GovmailConfig))
    messages = [unknown_key_message(GovmailConfig, [key]) for key in data if key in internal]
    return messages + unknown_environment_keys(GovmailConfig, os.environ)


def unknown_keys(data: dict[str, Any], error: ValidationError | None) -> list[str]:
    """Every unknown key, each named once: the file's first, then the environment's (pydantic
    also reports an environment variable naming an unknown key of a section the file has)."""
    outside = unknown_keys_outside_fields(data)
    reported = unknown_key_messages(GovmailConfig, error) if error is not None else []
    return [m for m in reported if not any(o.endswith(m) for o in outside)] + outside


def unknown_keys_text(path: Path, messages: list[str]) -> str:
    return "\n".join(f"{path}: {message}" for message in messages)


def load_config(path: Path) -> GovmailConfig:
    """Read a TOML config file; environment variables override its keys."""
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"no config file at {path} (run 'govmail init' first)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        config = GovmailConfig(**data)
    except ValidationError as exc:
        unknown = unknown_keys(data, exc)
        raise ConfigError(
            unknown_keys_text(path, unknown) if unknown else f"{path}: {exc}"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    unknown = unknown_keys(data, None)
    if unknown:
        raise ConfigError(unknown_keys_text(path, unknown))
    config.config_path = path.resolve()
    return config
