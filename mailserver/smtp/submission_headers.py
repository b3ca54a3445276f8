"""Header work a submission server does (RFC 6409 8): read From, add Date and Message-ID.

Pure functions over the message bytes; only the header section is parsed.
"""

from __future__ import annotations

import email.utils
from datetime import datetime
from email.parser import HeaderParser

MAX_HEADER_BYTES = 1024 * 1024


def header_section(message: bytes) -> bytes:
    """Everything before the first empty line (the whole message if there is none)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = message.find(separator, 0, MAX_HEADER_BYTES)
        if end >= 0:
            return message[: end + len(separator) // 2]
    if message.startswith((b"\r\n", b"\n")):
        return b""
    return message[:MAX_HEADER_BYTES]


def _fields(message: bytes) -> list[tuple[str, str]]:
    text = header_section(message).decode("utf-8", "replace")
    parsed = HeaderParser().parsestr(text, headersonly=True)
    return [(name.lower(), str(value)) for name, value in parsed.items()]


def from_addresses(message: bytes) -> list[str] | None:
    """The addr-specs of every From field, lower-case; None when there is no From field."""
    values = [value for name, value in _fields(message) if name == "from"]
    if not values:
        return None
    return [addr.lower() for _, addr in email.utils.getaddresses(values)]


def has_field(message: bytes, name: str) -> bool:
    return any(field == name.lower() for field, _ in _fields(message))


def complete_headers(message: bytes, now: datetime, message_id: str) -> bytes:
    """Prepend Date and Message-ID when the message lacks them (RFC 6409 8.2, 8.3)."""
    fields = {name for name, _ in _fields(message)}
    added = b""
    if "date" not in fields:
        added += f"Date: {email.utils.format_datetime(now)}\r\n".encode()
    if "message-id" not in fields:
        added += f"Message-ID: <{message_id}>\r\n".encode()
    return added + message
