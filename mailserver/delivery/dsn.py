"""Delivery status notifications (RFC 3464): the bounce, the delay warning and the success
report (delivered, relayed, expanded), as bytes.

A DSN is ``multipart/report; report-type=delivery-status`` (RFC 6522) with three parts: a
human-readable explanation (Vietnamese and English), the machine-readable
``message/delivery-status`` fields, and the original message (``message/rfc822``) or only its
header (``text/rfc822-headers``) as RET asks (RFC 3461 4.3). It is sent with the null reverse
path, so it can never cause another DSN (RFC 3461 6.2, RFC 5321 6.1).

Pure: the caller gives the time, the boundary and the ids.
"""

from __future__ import annotations

import base64
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mailserver.smtp.esmtp import decode_xtext

# Bounces carry the full original only up to this size; above it, the header alone.
MAX_RETURNED_BYTES = 256 * 1024
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SUCCESS_ACTIONS = frozenset({"delivered", "relayed", "expanded"})


@dataclass(frozen=True)
class RecipientReport:
    """One recipient's line in a DSN (RFC 3464 2.3)."""

    address: str
    action: str  # failed | delayed | delivered | relayed | expanded
    reply: str  # the last SMTP reply (or our own reason), e.g. "550 5.1.1 User unknown"
    remote_mta: str | None = None
    orcpt: str | None = None  # "rfc822;..." as the sender gave it (xtext)


def status_of(reply: str, action: str) -> str:
    """The RFC 3463 code of ``reply``; a generic one of the right class if it has none."""
    found = _STATUS.search(reply)
    if found:
        return ".".join(found.groups())
    if action == "delayed" or reply[:1] == "4":
        return "4.0.0"
    if action in SUCCESS_ACTIONS:
        return "2.0.0"
    return "5.0.0"


def header_part(message: bytes) -> bytes:
    """The header block of ``message`` with its terminating blank line."""
    end = message.find(b"\r\n\r\n")
    return message if end < 0 else message[: end + 4]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:900]


def _human_text(reports: Sequence[RecipientReport], delayed: bool, host: str) -> str:
    if all(r.action in SUCCESS_ACTIONS for r in reports):
        lines = [
            "Thư của bạn đã được chuyển tới người nhận dưới đây (theo yêu cầu báo nhận).",
            "Your message was delivered to the recipients below (you asked to be told).",
        ]
        if any(r.action == "relayed" for r in reports):
            lines += [
                "Với người nhận ghi 'relayed', thư đã chuyển tới máy chủ khác không hỗ trợ báo"
                " nhận; sẽ không có thông báo nào thêm.",
                "For recipients marked 'relayed' the message was handed to a server that does"
                " not report delivery; no further notice will follow.",
            ]
    elif delayed:
        lines = [
            "Thư của bạn chưa gửi được tới người nhận dưới đây; máy chủ vẫn đang thử lại.",
            "Your message has not yet been delivered to the recipients below;"
            " delivery is still being retried.",
        ]
    else:
        lines = [
            "Thư của bạn không gửi được tới người nhận dưới đây.",
            "Your message could not be delivered to the recipients below.",
        ]
    lines.append("")
    for report in reports:
        lines.append(f"<{report.address}>: {_one_line(report.reply)}")
    lines.extend(["", f"-- {host}"])
    return "\r\n".join(lines) + "\r\n"


def build_dsn(
    *,
    reporting_mta: str,
    original_sender: str,
    reports: Sequence[RecipientReport],
    original: bytes,
    arrival: datetime,
    now: datetime,
    boundary: str,
    message_id: str,
    envid: str | None = None,
    ret: str | None = None,
    will_retry_until: datetime | None = None,
) -> bytes:
    """The complete DSN message (CRLF line ends) for ``reports`` about ``original``."""
    delayed = all(r.action == "delayed" for r in reports)
    success = all(r.action in SUCCESS_ACTIONS for r in reports)
    if success:
        subject = "Successful Mail Delivery Report"
    elif delayed:
        subject = "Delayed Mail (still being retried)"
    else:
        subject = "Undelivered Mail Returned to Sender"
    header = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{original_sender}>",
        f"Subject: {subject}",
        f"Date: {email.utils.format_datetime(now)}",
        f"Message-ID: <{message_id}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    human = base64.encodebytes(_human_text(reports, delayed, reporting_mta).encode()).decode()

    status = [f"Reporting-MTA: dns; {reporting_mta}"]
    if envid:
        status.append(f"Original-Envelope-Id: {_one_line(decode_xtext(envid))}")
    status.append(f"Arrival-Date: {email.utils.format_datetime(arrival)}")
    for report in reports:
        status.append("")
        if report.orcpt:
            addr_type, _, value = report.orcpt.partition(";")
            status.append(f"Original-Recipient: {addr_type}; {_one_line(decode_xtext(value))}")
        status.append(f"Final-Recipient: rfc822; {report.address}")
        status.append(f"Action: {report.action}")
        status.append(f"Status: {status_of(report.reply, report.action)}")
        if report.remote_mta:
            status.append(f"Remote-MTA: dns; {report.remote_mta}")
        if report.reply[:3].isdigit():
            status.append(f"Diagnostic-Code: smtp; {_one_line(report.reply)}")
        status.append(f"Last-Attempt-Date: {email.utils.format_datetime(now)}")
        if report.action == "delayed" and will_retry_until is not None:
            status.append(f"Will-Retry-Until: {email.utils.format_datetime(will_retry_until)}")

    # RFC 3461 4.3: RET says what comes back. Without it a bounce carries the message, and a
    # delay warning or a success report (the recipient has the message) only its header.
    wanted_full = ret == "FULL" if (delayed or success) else ret != "HDRS"
    full = wanted_full and not delayed and len(original) <= MAX_RETURNED_BYTES
    returned = original if full else header_part(original)
    returned_type = "message/rfc822" if full else "text/rfc822-headers"
    has_8bit = any(byte > 127 for byte in returned)

    parts = [
        "\r\n".join(header).encode(),
        b"\r\n\r\nThis is a MIME-encapsulated delivery status notification.\r\n",
        f"\r\n--{boundary}\r\n".encode(),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        human.replace("\n", "\r\n").encode(),
        f"\r\n--{boundary}\r\n".encode(),
        b"Content-Type: message/delivery-status\r\n\r\n",
        ("\r\n".join(status) + "\r\n").encode(),
        f"\r\n--{boundary}\r\n".encode(),
        f"Content-Type: {returned_type}\r\n".encode(),
        b"Content-Transfer-Encoding: 8bit\r\n" if has_8bit else b"",
        b"\r\n",
        returned if returned.endswith(b"\r\n") else returned + b"\r\n",
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)


def wants_dsn(notify: str | None, kind: str) -> bool:
    """RFC 3461 4.1: without NOTIFY, failures (and, by our choice, delays) are reported."""
    if not notify:
        return kind in ("FAILURE", "DELAY")
    items = notify.upper().split(",")
    return kind in items
