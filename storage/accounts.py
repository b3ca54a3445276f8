"""Agencies, domains and mailboxes: creation, lookup, passwords, state, deletion.

Functions take the caller's write ``Session`` and an ``actor`` (who asked), and write an audit
event in the same transaction as the change. Password hashes are computed by the caller
(off the event loop) and passed in.
"""

from __future__ import annotations

import json
import string
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from storage.agency_code import parse_agency_code
from storage.mailbox_ops import (
    AccountNotFound,
    MailboxError,
    create_default_folders,
    drop_folder,
    list_folders,
)
from storage.models import (
    Agency,
    Alias,
    AuditEvent,
    Domain,
    DomainKind,
    KeptSubscription,
    Mailbox,
    MailboxState,
    PasswordSetupToken,
    SendAsGrant,
    UsageDaily,
    utcnow,
)
from storage.usage_counters import count_usage

MIB = 1024 * 1024


class AccountExists(MailboxError):
    pass


class DomainNotFound(MailboxError):
    pass


class InvalidAddress(MailboxError):
    """An address that cannot be given to a new mailbox; the text says why."""


def audit(
    session: Session,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    agency_id: int | None = None,
) -> None:
    """Record an admin action in the current transaction.

    ``agency_id``: the agency whose subtree the object belongs to, so that agency's admins see
    the event; None for system-wide objects.
    """
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            agency_id=agency_id,
            before=json.dumps(before, default=str, ensure_ascii=False) if before else None,
            after=json.dumps(after, default=str, ensure_ascii=False) if after else None,
        )
    )


def normalise_address(address: str) -> str:
    """Lowercase local@domain with an IDNA (A-label) domain; raises ValueError if malformed."""
    local, sep, domain = address.strip().rpartition("@")
    if not sep or not local or not domain:
        raise ValueError(f"not an e-mail address: {address!r}")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"invalid domain in {address!r}") from exc
    return f"{local.lower()}@{ascii_domain}"


# RFC 5321 4.1.2 atext, less "%" and "!": SMTP refuses local parts with them as relay tricks
# (mailserver/smtp/address.py relay_trick), so such a mailbox could never receive mail.
_LOCAL_PART_CHARACTERS = frozenset(string.ascii_letters + string.digits + "#$&'*+-/=?^_`{|}~")
MAX_LOCAL_PART_OCTETS = 64  # RFC 5321 4.5.3.1.1


def local_part_problem(address: str) -> str | None:
    """Why the local part of ``address`` (normalised) cannot be a new mailbox's, or None.

    It must be an RFC 5321 dot-atom in ASCII of at most 64 characters: letters, digits and
    ``#$&'*+-/=?^_`{|}~``, with single dots between them.
    """
    local = address.rpartition("@")[0]
    if len(local) > MAX_LOCAL_PART_OCTETS:
        return f"the part before @ is longer than {MAX_LOCAL_PART_OCTETS} characters"
    wrong = sorted({char for char in local if char not in _LOCAL_PART_CHARACTERS | {"."}})
    if wrong:
        shown = " ".join(repr(char) for char in wrong)
        allowed = "unaccented letters, digits, . - _ + are fine"
        return f"the part before @ may not contain {shown} ({allowed})"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "the part before @ may not start or end with a dot, nor hold two dots in a row"
    return None


def check_new_address(address: str) -> str:
    """``address`` normalised, or :class:`InvalidAddress` saying why no mailbox can have it."""
    local, at, domain = address.strip().rpartition("@")
    problem: str | None
    if not at:
        problem = "no @ between a name and a domain"
    elif not local:
        problem = "nothing before the @"
    elif not domain:
        problem = "no domain after the @"
    else:
        try:
            problem = local_part_problem(normalise_address(address))
        except ValueError:
            problem = "the domain is not a valid domain name"
    if problem is not None:
        raise InvalidAddress(f"invalid address {address!r}: {problem}")
    return normalise_address(address)


# ---------------------------------------------------------------- agencies and domains


def create_agency(
    session: Session,
    actor: str,
    abbreviation: str,
    name: str,
    parent_id: int | None = None,
    code: str | None = None,
) -> Agency:
    if code is not None:
        # Stored in one canonical form whichever form (QCVN 102 or QĐ 20) was given.
        code = parse_agency_code(code).qd20()
    agency = Agency(abbreviation=abbreviation, name=name, parent_id=parent_id, code=code)
    session.add(agency)
    session.flush()
    audit(
        session,
        actor,
        "agency.create",
        "agency",
        str(agency.id),
        after=agency.model_dump(),
        agency_id=agency.id,
    )
    return agency


def create_domain(
    session: Session, actor: str, name: str, agency_id: int, kind: DomainKind = DomainKind.PRIMARY
) -> Domain:
    name = normalise_address(f"x@{name}").partition("@")[2]
    if session.exec(select(Domain).where(Domain.name == name)).first():
        raise MailboxError(f"domain {name} already exists")
    domain = Domain(name=name, agency_id=agency_id, kind=kind)
    session.add(domain)
    session.flush()
    audit(
        session,
        actor,
        "domain.create",
        "domain",
        name,
        after=domain.model_dump(),
        agency_id=agency_id,
    )
    return domain


def find_domain(session: Session, name: str) -> Domain | None:
    return session.exec(select(Domain).where(Domain.name == name.lower().rstrip("."))).first()


# ---------------------------------------------------------------- mailboxes


@dataclass(frozen=True)
class MailboxView:
    """What is safe to show about a mailbox (no hash)."""

    id: int
    address: str
    display_name: str
    state: str
    quota_bytes: int
    used_bytes: int
    created_at: str
    last_login_at: str | None


def view(mailbox: Mailbox) -> MailboxView:
    assert mailbox.id is not None
    return MailboxView(
        id=mailbox.id,
        address=mailbox.address,
        display_name=mailbox.display_name,
        state=mailbox.state,
        quota_bytes=mailbox.quota_bytes,
        used_bytes=mailbox.used_bytes,
        created_at=mailbox.created_at.isoformat(timespec="seconds"),
        last_login_at=mailbox.last_login_at.isoformat(timespec="seconds")
        if mailbox.last_login_at
        else None,
    )


def create_mailbox(
    session: Session,
    actor: str,
    address: str,
    password_hash: str,
    quota_bytes: int,
    display_name: str = "",
    must_change_password: bool = False,
    agency_id: int | None = None,
    position: str = "",
) -> Mailbox:
    """Create an account with its default folders (INBOX, Sent, Drafts, Trash, Junk, Archive).

    ``agency_id``: the person's agency when it is not the domain's (a shared province domain).
    """
    address = check_new_address(address)
    domain = find_domain(session, address.partition("@")[2])
    if domain is None:
        raise DomainNotFound(f"domain of {address} is not served here")
    if session.exec(select(Mailbox.id).where(Mailbox.address == address)).first():
        raise AccountExists(f"mailbox {address} already exists")
    if session.exec(select(Alias.id).where(Alias.address == address)).first():
        raise AccountExists(f"{address} is already an alias")
    assert domain.id is not None
    mailbox = Mailbox(
        address=address,
        domain_id=domain.id,
        display_name=display_name,
        password_hash=password_hash,
        quota_bytes=quota_bytes,
        must_change_password=must_change_password,
        agency_id=agency_id,
        position=position,
        password_changed_at=utcnow(),
        next_uidvalidity=int(time.time()),
    )
    session.add(mailbox)
    session.flush()
    assert mailbox.id is not None
    create_default_folders(session, mailbox.id)
    audit(
        session,
        actor,
        "mailbox.create",
        "mailbox",
        address,
        after=auditable_mailbox(mailbox),
        agency_id=agency_id or domain.agency_id,
    )
    return mailbox


def mailbox_agency_id(session: Session, mailbox: Mailbox) -> int:
    """The agency a mailbox belongs to: its own, else its domain's."""
    if mailbox.agency_id is not None:
        return mailbox.agency_id
    domain = session.get(Domain, mailbox.domain_id)
    assert domain is not None
    return domain.agency_id


def auditable_mailbox(mailbox: Mailbox) -> dict[str, Any]:
    data = mailbox.model_dump()
    data.pop("password_hash", None)
    return data


def find_mailbox(session: Session, address: str) -> Mailbox | None:
    try:
        address = normalise_address(address)
    except ValueError:
        return None
    return session.exec(select(Mailbox).where(Mailbox.address == address)).first()


def require_mailbox(session: Session, address: str) -> Mailbox:
    mailbox = find_mailbox(session, address)
    if mailbox is None:
        raise AccountNotFound(f"no mailbox {address}")
    return mailbox


def list_mailboxes(session: Session) -> list[Mailbox]:
    return list(session.exec(select(Mailbox).order_by(col(Mailbox.address))))


def set_password(
    session: Session, actor: str, address: str, password_hash: str, must_change: bool = False
) -> None:
    mailbox = require_mailbox(session, address)
    mailbox.password_hash = password_hash
    mailbox.password_changed_at = utcnow()
    mailbox.must_change_password = must_change
    mailbox.failed_logins = 0
    session.add(mailbox)
    audit(
        session,
        actor,
        "mailbox.passwd",
        "mailbox",
        mailbox.address,
        after={"must_change_password": must_change},
        agency_id=mailbox_agency_id(session, mailbox),
    )


def set_state(session: Session, actor: str, address: str, state: MailboxState) -> None:
    mailbox = require_mailbox(session, address)
    before = mailbox.state
    mailbox.state = state
    mailbox.locked_at = None  # an admin's (or the outbound limit's) state is never auto-lifted
    if state == MailboxState.ACTIVE:
        mailbox.failed_logins = 0
    # A leaver's retention period runs from the moment the account is disabled.
    if state == MailboxState.DISABLED and mailbox.disabled_at is None:
        mailbox.disabled_at = utcnow()
    elif state != MailboxState.DISABLED:
        mailbox.disabled_at = None
    session.add(mailbox)
    audit(
        session,
        actor,
        "mailbox.state",
        "mailbox",
        mailbox.address,
        {"state": before},
        {"state": state},
        agency_id=mailbox_agency_id(session, mailbox),
    )


def delete_mailbox(session: Session, actor: str, address: str) -> None:
    """Delete an account with all its folders and messages (blob references released)."""
    mailbox = require_mailbox(session, address)
    assert mailbox.id is not None
    for folder in list_folders(session, mailbox.id):
        drop_folder(session, folder)
    # Rows that refer to the account go with it; an alias it ran stays, without an owner.
    for model in (SendAsGrant, PasswordSetupToken, UsageDaily, KeptSubscription):
        session.execute(delete(model).where(col(model.mailbox_id) == mailbox.id))
    session.execute(
        update(Alias).where(col(Alias.owner_mailbox_id) == mailbox.id).values(owner_mailbox_id=None)
    )
    audit(
        session,
        actor,
        "mailbox.delete",
        "mailbox",
        mailbox.address,
        before=auditable_mailbox(mailbox),
        agency_id=mailbox_agency_id(session, mailbox),
    )
    session.delete(mailbox)


@dataclass(frozen=True)
class LoginCounted:
    """The account after a counted attempt; ``locked_now``: this failure locked it."""

    state: str
    locked_now: bool = False


def note_login(
    session: Session,
    mailbox_id: int,
    success: bool,
    max_failures: int,
    now: datetime | None = None,
) -> LoginCounted:
    """Count a login attempt; after ``max_failures`` consecutive failures, lock the account.

    Callers may skip a success that changes nothing (mailserver.auth: already stamped today, no
    failures to reset), so the day's ``logins`` counter means "at least one login that day".
    """
    now = now or utcnow()
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise AccountNotFound("no such mailbox")
    locked_now = False
    if success:
        mailbox.failed_logins = 0
        mailbox.last_login_at = now
        count_usage(session, mailbox_id, now.date(), logins=1)
    else:
        mailbox.failed_logins += 1
        if mailbox.failed_logins >= max_failures and mailbox.state == MailboxState.ACTIVE:
            mailbox.state = MailboxState.LOCKED
            mailbox.locked_at = now
            locked_now = True
            audit(
                session,
                "system",
                "mailbox.lock",
                "mailbox",
                mailbox.address,
                after={"reason": f"{mailbox.failed_logins} consecutive failed logins"},
                agency_id=mailbox_agency_id(session, mailbox),
            )
    session.add(mailbox)
    return LoginCounted(mailbox.state, locked_now)


def auto_unlock(session: Session, mailbox_id: int, now: datetime, after: timedelta) -> bool:
    """Lift a lock set by failed logins (only those: ``locked_at`` set) once ``after`` has
    passed since it; True if the account is active now."""
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None or mailbox.state != MailboxState.LOCKED or mailbox.locked_at is None:
        return mailbox is not None and mailbox.state == MailboxState.ACTIVE
    if now - mailbox.locked_at < after:
        return False
    mailbox.state = MailboxState.ACTIVE
    mailbox.failed_logins = 0
    mailbox.locked_at = None
    session.add(mailbox)
    audit(
        session,
        "system:auto-unlock",
        "mailbox.state",
        "mailbox",
        mailbox.address,
        {"state": MailboxState.LOCKED},
        {"state": MailboxState.ACTIVE},
        agency_id=mailbox_agency_id(session, mailbox),
    )
    return True
