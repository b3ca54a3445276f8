"""One-time links to set a mailbox's password (bulk provisioning, resets without a password).

The token is shown once (in the link); only its sha256 is stored. It works once, until it
expires, and only for a mailbox that may log in. Issuing a new link voids the older ones, and
takes the mailbox's password away at once (a reset link is issued when the old password must
stop working: forgotten, or known to someone else); the link's password is the next one.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from storage.accounts import audit, mailbox_agency_id, set_password
from storage.mailbox_ops import MailboxError
from storage.models import Mailbox, MailboxState, PasswordSetupToken
from storage.tokens import hash_token

SETUP_TOKEN_PREFIX = "gms_"


class SetupLinkInvalid(MailboxError):
    """Unknown, used, expired, or for an account that cannot log in: one message for all."""


def issue_setup_token(
    session: Session, actor: str, mailbox: Mailbox, ttl: timedelta, now: datetime
) -> str:
    assert mailbox.id is not None
    session.execute(
        delete(PasswordSetupToken).where(
            col(PasswordSetupToken.mailbox_id) == mailbox.id,
            col(PasswordSetupToken.used_at).is_(None),
        )
    )
    mailbox.password_hash = ""  # no password verifies against an empty hash
    session.add(mailbox)
    token = SETUP_TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        PasswordSetupToken(
            mailbox_id=mailbox.id,
            token_sha256=hash_token(token),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    audit(
        session,
        actor,
        "mailbox.setup_link",
        "mailbox",
        mailbox.address,
        after={"expires_at": now + ttl, "password": "revoked"},
        agency_id=mailbox_agency_id(session, mailbox),
    )
    return token


def _valid_row(session: Session, token: str, now: datetime) -> tuple[PasswordSetupToken, Mailbox]:
    row = session.exec(
        select(PasswordSetupToken).where(col(PasswordSetupToken.token_sha256) == hash_token(token))
    ).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise SetupLinkInvalid("this link is not valid (used, expired or unknown)")
    mailbox = session.get(Mailbox, row.mailbox_id)
    if mailbox is None or mailbox.state != MailboxState.ACTIVE:
        raise SetupLinkInvalid("this link is not valid (used, expired or unknown)")
    return row, mailbox


def setup_token_mailbox(session: Session, token: str, now: datetime) -> Mailbox:
    """The mailbox a valid link is for (to check the password policy before hashing)."""
    return _valid_row(session, token, now)[1]


def redeem_setup_token(session: Session, token: str, password_hash: str, now: datetime) -> str:
    """Set the password and spend the link; returns the mailbox address."""
    row, mailbox = _valid_row(session, token, now)
    row.used_at = now
    session.add(row)
    set_password(session, f"setup-link:{mailbox.address}", mailbox.address, password_hash)
    return mailbox.address
