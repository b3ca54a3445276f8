"""Configuration sections of mail authentication and filtering: [filters], [dns], [dkim],
[spamd] and [clamd]. ``mailserver.config.GovmailConfig`` holds them; deploy/CONFIG.md documents
every key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from mailserver.config_keys import ConfigSection

# Executables and scripts a Windows or Android client would run on a double click.
DEFAULT_BLOCKED_EXTENSIONS = [
    "ade", "adp", "apk", "appx", "bat", "cab", "chm", "cmd", "com", "cpl", "dll", "exe", "hta",
    "inf", "ins", "isp", "iso", "jar", "js", "jse", "lib", "lnk", "mde", "msc", "msi", "msix",
    "msp", "mst", "pif", "ps1", "psm1", "reg", "scf", "scr", "sct", "shb", "sys", "vb", "vbe",
    "vbs", "vxd", "wsc", "wsf", "wsh",
]  # fmt: skip
# Office documents that can carry macros (blocked only when block_macro_documents is on).
MACRO_EXTENSIONS = [
    "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppam", "ppsm", "sldm",
]  # fmt: skip

FailurePolicy = Literal["tempfail", "accept"]


class FiltersSection(ConfigSection):
    """Which checks run at DATA, in order, and the policies they apply."""

    inbound: list[str] = Field(
        default_factory=lambda: [
            "authentication", "impersonation", "attachments", "spam", "sender_lists"
        ]
    )
    outbound: list[str] = Field(default_factory=lambda: ["attachments", "dkim_sign"])
    dmarc_enforcement: Literal["reject", "quarantine", "none"] = "reject"
    trusted_arc_sealers: list[str] = Field(default_factory=list)
    blocked_extensions: list[str] = Field(default_factory=lambda: list(DEFAULT_BLOCKED_EXTENSIONS))
    block_macro_documents: bool = False
    # Put before the Subject of outside mail that shows a local address (filters/impersonation.py);
    # empty: only the X-Govmail-Warning field is added.
    impersonation_subject_tag: str = "[CẢNH BÁO: thư từ bên ngoài]"


class DNSSection(ConfigSection):
    """Lookups for SPF, DKIM, DMARC and ARC: a static table first, then the system resolver."""

    static_file: str = ""  # TOML table of records; empty: none
    system_resolver: bool = True
    nameservers: list[str] = Field(default_factory=list)  # empty: /etc/resolv.conf
    timeout_seconds: float = 5.0


class DKIMSection(ConfigSection):
    """Signing keys: files under the data directory, rotated with an overlap."""

    key_dir: Path = Path("dkim")
    publish_hours: float = 48.0
    overlap_days: float = 7.0


class SpamdSection(ConfigSection):
    """SpamAssassin's spamd: one govmail starts itself (``managed``), or one at ``address``."""

    enabled: bool = True
    # govmail runs its own spamd on <data_dir>/spamd/spamd.sock (mailserver/scanners.py); then
    # ``address`` is not used. `govmail init` writes true; a config without the key: false.
    managed: bool = False
    network_tests: bool = False  # managed spamd: DNS blocklists etc. (off: --local)
    address: str = "127.0.0.1:783"  # host:port, or a unix socket path
    timeout_seconds: float = 30.0
    junk_score: float = 5.0
    reject_score: float = 15.0
    max_scan_size: int = 1024 * 1024
    on_failure: FailurePolicy = "tempfail"
    user: str = ""


class ClamdSection(ConfigSection):
    """ClamAV's clamd (optional antivirus)."""

    enabled: bool = False
    address: str = "/run/clamav/clamd.ctl"  # unix socket path, or host:port
    timeout_seconds: float = 30.0
    max_scan_size: int = 25 * 1024 * 1024
    on_failure: FailurePolicy = "tempfail"
