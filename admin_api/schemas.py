"""Request and response bodies of the admin API (pydantic), one section per resource."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from storage.agency_tree import qcvn102_or_none
from storage.models import Agency

MAX_ID = 2**31 - 1  # ids are 32-bit on every backend; larger numbers cannot name anything


def _printable(value: str) -> str:
    # NUL and other controls break PostgreSQL text and log lines; lone surrogates break UTF-8.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ValueError("control characters are not allowed")
    return value


Printable = AfterValidator(_printable)
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Name64 = Annotated[str, Printable, Field(min_length=1, max_length=64)]
Name255 = Annotated[str, Printable, Field(min_length=1, max_length=255)]
Text255 = Annotated[str, Printable, Field(max_length=255)]
Code = Annotated[str, Printable, Field(max_length=40)]
Address = Annotated[
    str, Printable, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
]
Password = Annotated[str, Printable, Field(min_length=1, max_length=256)]
QueryText = Annotated[str, Query(max_length=100), Printable]


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---------------------------------------------------------------- agencies


class AgencyOut(Orm):
    id: int
    parent_id: int | None
    code: str | None = Field(description="QĐ 20/2020 form (stored), e.g. H41.18")
    code_qcvn102: str | None = Field(description="QCVN 102:2016 form, e.g. 000.00.18.H41")
    abbreviation: str
    name: str
    created_at: datetime


def agency_out(agency: Agency) -> AgencyOut:
    data = {**agency.model_dump(), "code_qcvn102": qcvn102_or_none(agency.code)}
    return AgencyOut.model_validate(data)


class AgencyIn(BaseModel):
    abbreviation: Name64
    name: Name255
    parent_id: Id | None = None
    code: Code | None = Field(default=None, description="Either legal form")


class AgencyPatch(BaseModel):
    abbreviation: Name64 | None = None
    name: Name255 | None = None
    code: Code | None = Field(default=None, description="null or '' clears it")


class AgencyMove(BaseModel):
    parent_id: Id | None


class AgencyMerge(BaseModel):
    into_agency_id: Id


# ---------------------------------------------------------------- domains


class DomainOut(Orm):
    id: int
    name: str
    agency_id: int
    kind: Literal["primary", "legacy"]
    created_at: datetime


class DomainIn(BaseModel):
    name: Annotated[str, Printable, Field(min_length=3, max_length=253)]
    agency_id: Id
    kind: Literal["primary", "legacy"] = "primary"


class DomainPatch(BaseModel):
    kind: Literal["primary", "legacy"]


class DnsRecordsOut(BaseModel):
    domain: str
    zone_lines: list[str] = Field(description="Zone-file lines to publish (comments start ';')")


class DkimKeyOut(Orm):
    id: int
    domain_id: int
    selector: str
    algorithm: str
    public_key: str
    created_at: datetime
    signing: bool
    retire_after: datetime | None


class DkimRotateIn(BaseModel):
    immediate: bool = Field(default=False, description="A key leaked: sign with the new at once")


# ---------------------------------------------------------------- mailboxes


class MailboxOut(Orm):
    id: int
    address: str
    display_name: str
    position: str
    agency_id: int | None
    domain_id: int
    state: Literal["active", "locked", "disabled"]
    quota_bytes: int
    used_bytes: int
    must_change_password: bool
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None
    delete_after: datetime | None = None


class MailboxIn(BaseModel):
    address: Address
    display_name: Text255 = ""
    position: Text255 = ""
    agency_id: Id | None = None
    quota_bytes: int | None = Field(default=None, ge=1024 * 1024, le=2**50)
    password: Password | None = Field(default=None, description="Absent: a set-password link")
    must_change_password: bool = True


class MailboxCreated(BaseModel):
    mailbox: MailboxOut
    setup_link: str | None = None


class MailboxPatch(BaseModel):
    display_name: Text255 | None = None
    position: Text255 | None = None
    quota_bytes: int | None = Field(default=None, ge=1024 * 1024, le=2**50)
    must_change_password: bool | None = None
    agency_id: Id | None = None


class PasswordIn(BaseModel):
    password: Password | None = Field(default=None, description="Absent: a set-password link")
    must_change: bool = False


class PasswordOut(BaseModel):
    address: str
    setup_link: str | None = None


class SendAsIn(BaseModel):
    address: Address


class AddressOut(BaseModel):
    address: str


class PurgeOut(BaseModel):
    deleted: list[str]


# ---------------------------------------------------------------- aliases and groups


class AliasOut(Orm):
    id: int
    address: str
    domain_id: int
    agency_id: int | None
    targets: list[str]
    owner_mailbox_id: int | None
    created_at: datetime


class AliasIn(BaseModel):
    address: Address
    targets: list[Address] = Field(default_factory=list, max_length=1000)
    owner_mailbox_id: Id | None = None
    agency_id: Id | None = None


class AliasPatch(BaseModel):
    targets: list[Address] | None = Field(default=None, max_length=1000)
    owner_mailbox_id: Id | None = Field(default=None, description="null removes the owner")


class GroupOut(Orm):
    id: int
    address: str
    domain_id: int
    agency_id: int | None
    display_name: str
    send_policy: Literal["anyone", "members", "same_agency", "authenticated"]
    created_at: datetime


class GroupIn(BaseModel):
    address: Address
    display_name: Text255 = ""
    send_policy: Literal["anyone", "members", "same_agency", "authenticated"] = "members"
    members: list[Address] = Field(default_factory=list, max_length=10_000)
    agency_id: Id | None = None


class GroupPatch(BaseModel):
    display_name: Text255 | None = None
    send_policy: Literal["anyone", "members", "same_agency", "authenticated"] | None = None


class MembersIn(BaseModel):
    addresses: list[Address] = Field(min_length=1, max_length=10_000)


# ---------------------------------------------------------------- tokens and audit


class TokenOut(Orm):
    id: int
    name: str
    role: Literal["system_admin", "agency_admin", "auditor"]
    agency_id: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenIn(BaseModel):
    name: Annotated[str, Printable, Field(min_length=1, max_length=128)]
    role: Literal["system_admin", "agency_admin", "auditor"]
    agency_id: Id | None = None
    expires_in_days: int | None = Field(default=90, ge=1, le=3650, description="null: never")


class TokenIssued(BaseModel):
    token: str = Field(description="Shown once; only its hash is stored")
    info: TokenOut


class AuditOut(Orm):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    agency_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


# ---------------------------------------------------------------- queue


class QueueRecipientOut(BaseModel):
    address: str
    status: str
    attempts: int
    last_reply: str | None


class QueueEntryOut(BaseModel):
    id: int
    state: str
    sender: str
    size: int
    created_at: datetime
    next_attempt_at: datetime
    expires_at: datetime
    attempts: int
    authenticated_user: str | None
    source: str
    recipients: list[QueueRecipientOut]


# ---------------------------------------------------------------- imports and setup links


class ImportRowOut(BaseModel):
    line: int
    full_name: str
    agency: str
    status: Literal["created", "would_create", "exists", "error"]
    address: str
    message: str
    password: str | None
    setup_link: str | None


class ImportReportOut(BaseModel):
    summary: dict[str, int]
    rows: list[ImportRowOut]


class SetupIn(BaseModel):
    token: Annotated[str, Printable, Field(min_length=1, max_length=200)]
    password: Password
