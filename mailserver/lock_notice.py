"""The notice sent when failed logins lock an account (mailserver.auth).

A locked account cannot log in but still receives mail, so the notice goes into the account's
own INBOX (the user sees it from a webmail session already open, or after the unlock) and to
the admins: ``smtp.admin_alert_addresses``, else ``postmaster@`` the account's domain. One
message, in Vietnamese and English, saying why and how the account is unlocked.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlmodel import Session

from mailserver.delivery.dispatch import QueueOptions, apply_delivery, resolve_generated
from mailserver.instance import Instance

log = logging.getLogger(__name__)


def lock_notice_admins(instance: Instance, address: str) -> list[str]:
    configured = instance.config.smtp.admin_alert_addresses
    return list(configured) or [f"postmaster@{address.rpartition('@')[2]}"]


def _unlock_lines(auto_unlock_minutes: int) -> tuple[str, str]:
    if auto_unlock_minutes > 0:
        return (
            f"Tài khoản sẽ tự mở lại sau {auto_unlock_minutes} phút,"
            " hoặc khi quản trị viên mở khóa.",
            f"It unlocks by itself after {auto_unlock_minutes} minutes,"
            " or when an admin unlocks it.",
        )
    return (
        "Hãy liên hệ quản trị viên của cơ quan để mở khóa.",
        "Ask your agency's administrator to unlock it.",
    )


def lock_notice(
    hostname: str,
    address: str,
    admins: list[str],
    failures: int,
    now: datetime,
    auto_unlock_minutes: int,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"govmail <postmaster@{hostname}>"
    message["To"] = address
    message["Cc"] = ", ".join(admins)
    message["Subject"] = f"[govmail] Tài khoản bị khóa / Account locked: {address}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<lock.{secrets.token_hex(10)}@{hostname}>"
    message["Auto-Submitted"] = "auto-generated"
    unlock_vi, unlock_en = _unlock_lines(auto_unlock_minutes)
    message.set_content(
        "\n".join(
            [
                f"Tài khoản {address} đã bị khóa sau {failures} lần đăng nhập sai liên tiếp"
                " (có thể có người dò mật khẩu). Thư vẫn được nhận bình thường.",
                unlock_vi,
                "",
                f"The account {address} was locked after {failures} failed logins in a row"
                " (someone may be guessing its password). Mail is still received.",
                unlock_en,
                "",
            ]
        ),
        charset="utf-8",
        cte="8bit",
    )
    return message.as_bytes()


async def send_lock_notice(instance: Instance, address: str, failures: int) -> None:
    """Deliver the notice (local copies at once, remote admins through the queue)."""
    config = instance.config
    now = instance.clock()
    admins = lock_notice_admins(instance, address)
    raw = lock_notice(
        config.server.hostname, address, admins, failures, now, config.auth.auto_unlock_minutes
    )
    store = instance.store
    blob, indexed = await store.store_blob(raw)
    options = QueueOptions(
        sender="",
        now=now,
        lifetime=timedelta(seconds=config.queue.lifetime_seconds),
        source="alert",
    )

    def deliver(session: Session) -> None:
        recipients = list(dict.fromkeys([address.lower(), *(a.lower() for a in admins)]))
        apply_delivery(session, blob, indexed, resolve_generated(session, recipients), options)

    await store.write(deliver)
    log.warning("event=alert kind=login_lock user=%s admins=%s", address, admins)
