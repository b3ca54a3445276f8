"""Trace headers added on every SMTP path (RFC 5321 4.4): Received."""

from __future__ import annotations

import email.utils
import random
from datetime import datetime


def new_queue_id() -> str:
    """A short random id that names one transaction in logs and in the Received header (it
    only needs to be unique: ``random``, not ``secrets``, so no system call per message)."""
    return f"{random.getrandbits(64):016x}"


def _clean(text: str) -> str:
    # Client-supplied text (HELO) must not break the header.
    return "".join(ch for ch in text if ch.isprintable() and ch not in "()\\")[:255]


def received_header(
    *,
    helo: str | None,
    peer_ip: str,
    by_host: str,
    protocol: str,
    queue_id: str,
    recipient: str | None,
    when: datetime,
) -> bytes:
    """The Received line, folded, CRLF-terminated. ``protocol`` is ESMTP, ESMTPS, ESMTPSA, ..."""
    helo_text = _clean(helo or "unknown")
    lines = [
        f"Received: from {helo_text} ([{peer_ip}])",
        f"\tby {by_host} (govmail) with {protocol} id {queue_id}",
    ]
    for_clause = f"\tfor <{_clean(recipient)}>;" if recipient else ""
    date = email.utils.format_datetime(when)
    if for_clause:
        lines.append(for_clause)
        lines.append(f"\t{date}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def protocol_name(esmtp: bool, tls: bool, authenticated: bool, utf8: bool) -> str:
    """RFC 3848 / RFC 6531 "with" keywords."""
    if not esmtp:
        return "SMTP"
    name = "UTF8SMTP" if utf8 else "ESMTP"
    if tls:
        name += "S"
    if authenticated:
        name += "A"
    return name
