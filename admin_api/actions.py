"""What the routers share: running storage functions, passwords, links, mailbox views."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from fastapi import Request
from sqlmodel import Session

from admin_api.runtime import instance_of, store_of
from admin_api.schemas import MailboxOut
from mailserver.config import GovmailConfig
from storage.mailbox_admin import delete_after
from storage.mailbox_ops import MailboxError
from storage.models import Mailbox
from storage.password_policy import check_password

T = TypeVar("T")


async def read(request: Request, fn: Callable[[Session], T]) -> T:
    return await store_of(request).read(fn)


async def write(request: Request, fn: Callable[[Session], T]) -> T:
    """Run ``fn`` in a write transaction (group commit); returns after the durable commit."""
    return await store_of(request).write(fn)


class PasswordRefused(MailboxError):
    pass


async def hash_new_password(
    request: Request, password: str, address: str, full_name: str | None
) -> str:
    """Apply the provincial policy, then hash off the event loop."""
    problems = check_password(password, address.partition("@")[0], full_name)
    if problems:
        raise PasswordRefused("password refused: " + " ".join(problems))
    instance = instance_of(request)
    return await instance.store.offload(instance.passwords.hash, password)


def retention(config: GovmailConfig) -> timedelta:
    return timedelta(days=config.provisioning.leaver_retention_days)


def setup_link_ttl(config: GovmailConfig) -> timedelta:
    return timedelta(hours=config.provisioning.setup_link_hours)


def mailbox_out(mailbox: Mailbox, config: GovmailConfig) -> MailboxOut:
    out = MailboxOut.model_validate(mailbox)
    out.delete_after = delete_after(mailbox, retention(config))
    return out
