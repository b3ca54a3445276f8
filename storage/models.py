"""SQLModel tables: agencies, domains, mailboxes, aliases, folders, messages, blobs, audit.

Schema changes go through alembic (storage/migrations); these classes are the source the
migrations are written from. Timestamps are timezone-aware, stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from storage.text_fold import fold_for_search


def utcnow() -> datetime:
    return datetime.now(UTC)


class MailboxState(StrEnum):
    """A locked mailbox still receives mail but cannot log in; a disabled one does neither."""

    ACTIVE = "active"
    LOCKED = "locked"
    DISABLED = "disabled"


class DomainKind(StrEnum):
    PRIMARY = "primary"
    LEGACY = "legacy"  # kept after a province merger; mail to it still delivers


class Agency(SQLModel, table=True):
    """An agency in the province tree (province -> department/commune -> unit, any depth)."""

    __tablename__ = "agency"
    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="agency.id", index=True)
    code: str | None = Field(default=None, unique=True, max_length=35)  # canonical form
    abbreviation: str = Field(index=True, max_length=64)
    name: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow)


class Domain(SQLModel, table=True):
    """A mail domain (A-label, lowercase) belonging to an agency."""

    __tablename__ = "domain"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=255)
    agency_id: int = Field(foreign_key="agency.id", index=True)
    kind: str = Field(default=DomainKind.PRIMARY, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class Mailbox(SQLModel, table=True):
    """A user's account: one address, a password, a quota, and folders."""

    __tablename__ = "mailbox"
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(unique=True, max_length=320)  # local@domain, lowercase
    domain_id: int = Field(foreign_key="domain.id", index=True)
    # The agency the person works for; None means the domain's agency. A province domain is
    # shared (thanhnn.skhcn@province.gov.vn), so the domain alone does not say whose it is.
    agency_id: int | None = Field(default=None, foreign_key="agency.id", index=True)
    display_name: str = Field(default="", max_length=255)
    # fold_for_search(display name + address), kept by the listener below, for admin search.
    search_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    password_hash: str = Field(default="", max_length=255)
    quota_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    used_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    position: str = Field(default="", max_length=255)  # job title (chức vụ)
    state: str = Field(default=MailboxState.ACTIVE, max_length=16)
    disabled_at: datetime | None = None  # leavers: data deleted after the retention period
    must_change_password: bool = False
    password_changed_at: datetime | None = None
    failed_logins: int = 0
    # When failed logins locked the account (auth.auto_unlock_minutes counts from here); None
    # for an admin's or the outbound limit's lock, which only an admin lifts.
    locked_at: datetime | None = None
    last_login_at: datetime | None = None
    next_uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Alias(SQLModel, table=True):
    """An address that forwards to one or more mailboxes or addresses (newline-separated).

    ``owner_mailbox_id``: the mailbox that may also send as this address (e.g. an agency address
    run by its records clerk).
    """

    __tablename__ = "alias"
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(unique=True, max_length=320)
    domain_id: int = Field(foreign_key="domain.id", index=True)
    targets: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    agency_id: int | None = Field(default=None, foreign_key="agency.id", index=True)
    owner_mailbox_id: int | None = Field(default=None, foreign_key="mailbox.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class GroupSendPolicy(StrEnum):
    """Who may send to a distribution list."""

    ANYONE = "anyone"
    MEMBERS = "members"
    SAME_AGENCY = "same_agency"
    AUTHENTICATED = "authenticated"


class MailGroup(SQLModel, table=True):
    """A distribution list: mail to its address goes to every member."""

    __tablename__ = "mail_group"
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(unique=True, max_length=320)
    domain_id: int = Field(foreign_key="domain.id", index=True)
    display_name: str = Field(default="", max_length=255)
    agency_id: int | None = Field(default=None, foreign_key="agency.id", index=True)
    send_policy: str = Field(default=GroupSendPolicy.MEMBERS, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class GroupMember(SQLModel, table=True):
    """One member address of a group (a local mailbox, another group, or an outside address)."""

    __tablename__ = "group_member"
    __table_args__ = (UniqueConstraint("group_id", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="mail_group.id", index=True)
    address: str = Field(max_length=320, index=True)


class SendAsGrant(SQLModel, table=True):
    """Delegation: ``mailbox_id`` may send with ``address`` in the envelope and From."""

    __tablename__ = "send_as_grant"
    __table_args__ = (UniqueConstraint("mailbox_id", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    mailbox_id: int = Field(foreign_key="mailbox.id", index=True)
    address: str = Field(max_length=320)
    created_at: datetime = Field(default_factory=utcnow)


class Folder(SQLModel, table=True):
    """An IMAP mailbox (called folder here to keep "mailbox" for the account).

    UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ as RFC 3501 2.3.1.1 and RFC 7162 3.1.1 define them.
    """

    __tablename__ = "folder"
    __table_args__ = (UniqueConstraint("mailbox_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    mailbox_id: int = Field(foreign_key="mailbox.id", index=True)
    name: str = Field(max_length=1024)  # full path, "/" separated, NFC
    special_use: str | None = Field(default=None, max_length=16)  # \Sent, \Drafts, ...
    subscribed: bool = True
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    uidnext: int = Field(default=1, sa_column=Column(BigInteger, nullable=False, default=1))
    highestmodseq: int = Field(default=1, sa_column=Column(BigInteger, nullable=False, default=1))
    # The first UID no IMAP4rev1 session has seen yet (\Recent, storage.recent).
    first_recent_uid: int = Field(
        default=1, sa_column=Column(BigInteger, nullable=False, default=1, server_default="1")
    )
    created_at: datetime = Field(default_factory=utcnow)


class KeptSubscription(SQLModel, table=True):
    """A subscription whose folder was deleted: RFC 3501 6.3.6 forbids dropping it unasked.

    Subscriptions of existing folders are ``Folder.subscribed``; IMAP lists these names as
    ``\\NonExistent \\Subscribed`` until UNSUBSCRIBE, or a CREATE of the name takes it back.
    """

    __tablename__ = "kept_subscription"
    __table_args__ = (UniqueConstraint("mailbox_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    mailbox_id: int = Field(foreign_key="mailbox.id", index=True)
    name: str = Field(max_length=1024)


class Message(SQLModel, table=True):
    """One message in one folder. Bytes live in the blob store; this row caches what IMAP needs."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("folder_id", "uid"),
        Index("ix_message_folder_modseq", "folder_id", "modseq"),
    )
    id: int | None = Field(default=None, primary_key=True)
    folder_id: int = Field(foreign_key="folder.id")
    uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    modseq: int = Field(sa_column=Column(BigInteger, nullable=False))
    flags: str = Field(default="", max_length=4096)  # space-separated, sorted
    internal_date: datetime
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    blob_sha256: str = Field(foreign_key="blob.sha256", max_length=64, index=True)
    # Cached at delivery (storage.message_summary): envelope, body structure, part offsets.
    summary: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Search headers, folded for accent-insensitive search (storage.text_fold).
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    from_addr: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    to_addr: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    cc_addr: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    sent_date: datetime | None = None  # Date header's wall clock, its zone dropped (SENTON)
    message_id: str = Field(default="", max_length=998)


class ExpungedMessage(SQLModel, table=True):
    """Tombstone of an expunged UID, for QRESYNC VANISHED (RFC 7162 3.2.10)."""

    __tablename__ = "expunged_message"
    __table_args__ = (Index("ix_expunged_folder_modseq", "folder_id", "modseq"),)
    id: int | None = Field(default=None, primary_key=True)
    folder_id: int = Field(foreign_key="folder.id")
    uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    modseq: int = Field(sa_column=Column(BigInteger, nullable=False))


class Blob(SQLModel, table=True):
    """Content-addressed message bytes; one row per distinct content, counted by references."""

    __tablename__ = "blob"
    sha256: str = Field(primary_key=True, max_length=64)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    refcount: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class BlobInline(SQLModel, table=True):
    """The bytes of a small blob, committed with the rows that refer to it, until the blob
    spiller has written them to the blob's file (storage.inline_blobs)."""

    __tablename__ = "blob_inline"
    sha256: str = Field(primary_key=True, foreign_key="blob.sha256", max_length=64)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditEvent(SQLModel, table=True):
    """Who did what to which object, written in the same transaction as the change."""

    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=320)
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=320)
    # Whose subtree the object is in (for agency admins' view of the log); None: system-wide.
    agency_id: int | None = Field(default=None, index=True)
    before: str | None = Field(default=None, sa_column=Column(Text))
    after: str | None = Field(default=None, sa_column=Column(Text))


class ApiToken(SQLModel, table=True):
    """A bearer token of the admin API; only its sha256 is stored."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    token_sha256: str = Field(unique=True, max_length=64)
    role: str = Field(max_length=32)  # system_admin | agency_admin | auditor
    agency_id: int | None = Field(default=None, foreign_key="agency.id")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class PasswordSetupToken(SQLModel, table=True):
    """A one-time link to set a mailbox's first password; only its sha256 is stored."""

    __tablename__ = "password_setup_token"
    id: int | None = Field(default=None, primary_key=True)
    mailbox_id: int = Field(foreign_key="mailbox.id", index=True)
    token_sha256: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class QueueState(StrEnum):
    QUEUED = "queued"
    DONE = "done"  # every recipient delivered or failed (DSN sent)
    HELD = "held"


class QueueEntry(SQLModel, table=True):
    """An outbound message waiting for delivery to remote servers. Holds a blob reference."""

    __tablename__ = "queue_entry"
    __table_args__ = (Index("ix_queue_due", "state", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    sender: str = Field(max_length=320)  # envelope MAIL FROM, "" for bounces
    blob_sha256: str = Field(foreign_key="blob.sha256", max_length=64)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    authenticated_user: str | None = Field(default=None, max_length=320, index=True)
    source: str = Field(default="submission", max_length=16)  # submission | forward | dsn
    dsn_envid: str | None = Field(default=None, max_length=100)
    dsn_ret: str | None = Field(default=None, max_length=8)  # FULL | HDRS
    smtputf8: bool = False  # received with MAIL ... SMTPUTF8 (migration 0008)
    state: str = Field(default=QueueState.QUEUED, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    delay_warned_at: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_until: datetime | None = None


class QueueRecipient(SQLModel, table=True):
    """One recipient of a queued message, with its own delivery status."""

    __tablename__ = "queue_recipient"
    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="queue_entry.id", index=True)
    address: str = Field(max_length=320)
    domain: str = Field(max_length=255, index=True)
    status: str = Field(default="pending", max_length=16)  # pending | delivered | failed
    attempts: int = 0
    last_reply: str | None = Field(default=None, sa_column=Column(Text))
    dsn_notify: str | None = Field(default=None, max_length=64)
    dsn_orcpt: str | None = Field(default=None, max_length=500)
    updated_at: datetime = Field(default_factory=utcnow)


class DkimKey(SQLModel, table=True):
    """A DKIM signing key of a domain; private keys live in files readable by the service only."""

    __tablename__ = "dkim_key"
    __table_args__ = (UniqueConstraint("domain_id", "selector"),)
    id: int | None = Field(default=None, primary_key=True)
    domain_id: int = Field(foreign_key="domain.id", index=True)
    selector: str = Field(max_length=63)
    algorithm: str = Field(max_length=16)  # rsa-sha256 | ed25519-sha256
    private_key_file: str = Field(max_length=1024)
    public_key: str = Field(sa_column=Column(Text, nullable=False))  # base64 for the p= tag
    created_at: datetime = Field(default_factory=utcnow)
    signing: bool = True  # signs new mail
    retire_after: datetime | None = None  # published until then, after rotation


class UsageDaily(SQLModel, table=True):
    """Per-mailbox daily counters for the usage report."""

    __tablename__ = "usage_daily"
    mailbox_id: int = Field(foreign_key="mailbox.id", primary_key=True)
    day: date = Field(primary_key=True)
    received: int = 0
    sent: int = 0
    logins: int = 0


class SenderRuleKind(StrEnum):
    ALLOW = "allow"  # never to Junk for this mailbox
    BLOCK = "block"  # always to Junk for this mailbox (refused if every recipient blocks)


class SenderRule(SQLModel, table=True):
    """A mailbox's allow or block entry: an address "a@b.vn" or a whole domain "@b.vn"."""

    __tablename__ = "sender_rule"
    __table_args__ = (UniqueConstraint("mailbox_id", "pattern"),)
    id: int | None = Field(default=None, primary_key=True)
    mailbox_id: int = Field(foreign_key="mailbox.id", index=True, ondelete="CASCADE")
    pattern: str = Field(max_length=320)  # lower-case; "@domain" for a domain
    kind: str = Field(max_length=8)
    created_at: datetime = Field(default_factory=utcnow)


class LoginIpFailure(SQLModel, table=True):
    """Failed logins from one client IP in the current window (mailserver.auth_throttle).

    In the database so that every worker process and node counts the same failures, and a
    restart forgets none. Times are epoch seconds (the throttle's clock).
    """

    __tablename__ = "login_ip_failure"
    ip: str = Field(primary_key=True, max_length=64)
    window_start: float  # the first failure of the window
    failures: int


def mailbox_search_text(display_name: str, address: str) -> str:
    """What admin search matches a mailbox against: folded name and address."""
    return fold_for_search(f"{display_name} {address}")


@event.listens_for(Mailbox, "before_insert")
@event.listens_for(Mailbox, "before_update")
def _keep_mailbox_search_text(_mapper: Any, _connection: Any, target: Mailbox) -> None:
    target.search_text = mailbox_search_text(target.display_name, target.address)
