"""`govmail init`: a new instance's config file, database, TLS certificate and first domain."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from filters.dkim_keys import ensure_keys
from mailserver.config import DEFAULT_CONFIG_NAME, GovmailConfig, load_config
from mailserver.instance import open_instance
from mailserver.tls import ensure_self_signed_cert
from storage.accounts import create_agency, create_domain, normalise_address
from storage.models import utcnow
from storage.tokens import issue_token

TOKEN_FILE = "admin-token"

CONFIG_TEMPLATE = """\
# govmail configuration. Every key: deploy/CONFIG.md.
# Any key can be overridden by the environment: GOVMAIL_<SECTION>__<KEY>, e.g.
# GOVMAIL_SMTP__MX_LISTEN=0.0.0.0:25

[server]
hostname = "{hostname}"
data_dir = "."            # relative to this file

[database]
url = ""                  # empty: SQLite at <data_dir>/govmail.sqlite3; or postgresql://...

[storage]
blob_dir = "blobs"
default_quota_mb = 2048

[tls]
cert_file = "tls/cert.pem"  # self-signed at init; replace with your CA's certificate
key_file = "tls/key.pem"

[smtp]
mx_listen = "127.0.0.1:2525"          # production: 0.0.0.0:25
submission_listen = "127.0.0.1:2587"  # production: 0.0.0.0:587 (STARTTLS, AUTH)
submissions_listen = "127.0.0.1:2465" # production: 0.0.0.0:465 (implicit TLS, AUTH)
max_message_size = 41943040           # 40 MiB: 30 MB of attachments after base64

[imap]
listen = "127.0.0.1:2143"             # production: 0.0.0.0:143 (STARTTLS)
tls_listen = "127.0.0.1:2993"         # production: 0.0.0.0:993

[admin_api]
listen = "127.0.0.1:8080"
# public_url = "https://mail.example.gov.vn"  # what password-change links point at (set it!)

[spamd]
managed = true   # govmail runs its own spamd on data_dir/spamd/spamd.sock; false: use address
# address = "127.0.0.1:783"  # an external spamd (with managed = false)
"""


class InitError(Exception):
    pass


@dataclass(frozen=True)
class InitResult:
    config_path: Path
    token_path: Path
    admin_token: str
    listeners: dict[str, str]


def initialise_instance(
    data_dir: Path, domain: str, hostname: str | None = None, agency_name: str | None = None
) -> InitResult:
    """Create everything a new instance needs; refuses to touch an existing one."""
    try:
        domain = normalise_address(f"postmaster@{domain}").partition("@")[2]
    except ValueError as exc:
        raise InitError(f"invalid domain {domain!r}") from exc
    if "." not in domain:
        raise InitError(f"invalid domain {domain!r}: expected a dotted name")
    data_dir = data_dir.resolve()
    config_path = data_dir / DEFAULT_CONFIG_NAME
    if config_path.exists():
        raise InitError(f"{config_path} already exists; refusing to overwrite it")
    if (data_dir / "govmail.sqlite3").exists():
        raise InitError(f"{data_dir} already holds a govmail database; refusing to overwrite it")
    data_dir.mkdir(parents=True, exist_ok=True)
    hostname = hostname or f"mail.{domain}"
    # Exclusive create: two inits racing cannot both write the file.
    with open(config_path, "x", encoding="utf-8") as handle:
        handle.write(CONFIG_TEMPLATE.format(hostname=hostname))
    config: GovmailConfig = load_config(config_path)
    ensure_self_signed_cert(config.cert_file, config.key_file, [hostname, domain])
    instance = open_instance(config)
    try:
        with instance.db.write_session() as session:
            abbreviation = domain.split(".")[0]
            agency = create_agency(session, "init", abbreviation, agency_name or domain)
            assert agency.id is not None
            create_domain(session, "init", domain, agency.id)
            ensure_keys(session, "init", domain, config.dkim_key_dir, utcnow())
            token = issue_token(session, "init", "initial system admin", "system_admin")
    finally:
        instance.store.db.dispose()
    token_path = data_dir / TOKEN_FILE
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    listeners = {
        "SMTP (MX)": config.smtp.mx_listen,
        "SMTP submission": config.smtp.submission_listen,
        "SMTP submissions": config.smtp.submissions_listen,
        "IMAP": config.imap.listen,
        "IMAPS": config.imap.tls_listen,
        "admin API": f"http://{config.admin_api.listen}",
    }
    return InitResult(config_path, token_path, token, listeners)
