"""Checks of the configuration's values: things that load fine but will not work as intended."""

from __future__ import annotations

import ipaddress

from mailserver.config import GovmailConfig, parse_listen
from mailserver.doctor.results import CheckResult, fail, ok, warn

CHECK = "configuration"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_listeners(config: GovmailConfig) -> list[str]:
    """The "section.key" of each mail listener reachable from other machines."""
    listeners = {
        "smtp.mx_listen": config.smtp.mx_listen,
        "smtp.submission_listen": config.smtp.submission_listen,
        "smtp.submissions_listen": config.smtp.submissions_listen,
        "imap.listen": config.imap.listen,
        "imap.tls_listen": config.imap.tls_listen,
    }
    return [
        key for key, value in listeners.items() if value and not is_loopback(parse_listen(value)[0])
    ]


def check_hostname(config: GovmailConfig) -> list[CheckResult]:
    hostname = config.server.hostname
    exposed = public_listeners(config)
    if exposed and (is_loopback(hostname) or "." not in hostname):
        return [
            fail(
                CHECK,
                f"server.hostname is {hostname!r} but {', '.join(exposed)} listen beyond loopback"
                " (the name goes into SMTP greetings, Received headers and the TLS certificate)",
                "set [server] hostname to this server's DNS name (the MX host, mail.DOMAIN)",
            )
        ]
    return []


def check_admin_public_url(config: GovmailConfig) -> list[CheckResult]:
    listen = config.admin_api.listen
    if not listen or is_loopback(parse_listen(listen)[0]) or config.admin_api.public_url:
        return []
    return [
        warn(
            CHECK,
            f"admin_api.listen is {listen} (beyond loopback) but admin_api.public_url is empty:"
            f" set-password links will point to http://{listen}",
            "set [admin_api] public_url to the https:// address users reach the API at",
        )
    ]


def check_spam_scores(config: GovmailConfig) -> list[CheckResult]:
    spamd = config.spamd
    if spamd.enabled and spamd.reject_score <= spamd.junk_score:
        return [
            warn(
                CHECK,
                f"spamd.reject_score ({spamd.reject_score}) is not above spamd.junk_score"
                f" ({spamd.junk_score}): nothing is ever filed to Junk, spam is refused instead",
                "raise [spamd] reject_score above junk_score (defaults 15 and 5)",
            )
        ]
    return []


def check_antivirus_wiring(config: GovmailConfig) -> list[CheckResult]:
    wants_antivirus = "antivirus" in config.filters.inbound + config.filters.outbound
    if wants_antivirus and not config.clamd.enabled:
        return [
            warn(
                CHECK,
                "'antivirus' is in [filters] but clamd.enabled is false",
                "set [clamd] enabled = true (and address), or remove 'antivirus' from [filters]",
            )
        ]
    return []


def check_fsync(config: GovmailConfig) -> list[CheckResult]:
    if config.storage.fsync:
        return []
    return [
        warn(
            CHECK,
            "storage.fsync is false: a power loss can lose mail already acknowledged",
            "set [storage] fsync = true (off is only for throwaway test data)",
        )
    ]


def check_config_values(config: GovmailConfig) -> list[CheckResult]:
    """Every value check; one ok line when none has anything to say."""
    problems = [
        *check_hostname(config),
        *check_admin_public_url(config),
        *check_spam_scores(config),
        *check_antivirus_wiring(config),
        *check_fsync(config),
    ]
    return problems or [ok(CHECK, f"{config.config_path} loads, values are consistent")]
