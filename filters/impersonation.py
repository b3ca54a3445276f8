"""The inbound ``impersonation`` check: outside mail dressed up as a colleague's.

A message whose From or Sender address is outside, but which *shows* a local address, is the
classic way to impersonate a director to his staff: a display name that is a local address
(``"giamdoc@so.gov.vn" <x@outside.net>``), a comment holding one, an RFC 2047 encoded word that
decodes to one, or a local address with an invisible character (U+200B) that makes it another
domain. None of these claims a local domain in an address, so DMARC (the ``authentication``
check, which refuses unaligned mail claiming a local domain) lets them through. This check adds
a visible warning instead, as Microsoft 365 and Google do for external senders impersonating
internal names: a tag before the Subject and an ``X-Govmail-Warning`` field that clients and
sieve rules can show or act on. A field of that name that arrives from outside is removed.

Text is compared after NFKC normalisation (full-width letters), with Unicode format characters
(zero-width spaces and joiners, soft hyphens, bidi marks) dropped and case folded.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from filters.message_headers import field_values
from filters.pipeline import Direction, MessageContext, Verdict
from storage.message_summary import decode_header_text, parse_address_list, unfold

WARNING_FIELD = "X-Govmail-Warning"
WATCHED_FIELDS = ("from", "sender")
# An address as it may stand in display text: ASCII after normalisation (local domains are
# stored in their ASCII form, IDNs as A-labels).
_ADDRESS_LIKE = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+")

IsLocalDomain = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True)
class Resemblance:
    """A local-looking address shown in a header field whose real address is another one."""

    field: str  # "from" or "sender"
    shown: str  # the local address a reader sees


def normalise_text(text: str) -> str:
    """NFKC, without format characters (category Cf), case-folded."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf").casefold()


def shown_addresses(value: str) -> set[str]:
    """Every address a reader may take from one field value: in the decoded display names,
    comments and addresses, after normalisation."""
    text = normalise_text(decode_header_text(value))
    return {match.group().strip(".") for match in _ADDRESS_LIKE.finditer(text)}


def real_addresses(value: str) -> set[str]:
    """The addr-specs of a field value exactly as a mail system routes them (lower-cased)."""
    return {
        f"{a.mailbox}@{a.host}".lower()
        for a in parse_address_list(unfold(value))
        if a.mailbox and a.host
    }


def displayed_not_real(
    message: bytes, fields: Iterable[str] = WATCHED_FIELDS
) -> list[tuple[str, str]]:
    """(field, shown address) for every address shown in a field that is not one of the field's
    real addresses: the candidates for impersonation, before asking which domains are local."""
    found: list[tuple[str, str]] = []
    for name in fields:
        for value in field_values(message, name):
            real = real_addresses(value)
            for shown in sorted(shown_addresses(value) - real):
                if (name, shown) not in found:
                    found.append((name, shown))
    return found


async def find_resemblances(
    message: bytes, is_local_domain: IsLocalDomain, fields: Iterable[str] = WATCHED_FIELDS
) -> list[Resemblance]:
    """Shown addresses in a local domain that are not the field's real address."""
    resemblances: list[Resemblance] = []
    for name, shown in displayed_not_real(message, fields):
        if await is_local_domain(shown.rpartition("@")[2]):
            resemblances.append(Resemblance(name, shown))
    return resemblances


def encode_subject_tag(tag: str, before_encoded_word: bool = False) -> str:
    """The tag as it goes before a raw Subject value, with its separating space: ASCII as it is,
    else one RFC 2047 word. Whitespace between two encoded words is not displayed (RFC 2047
    6.2), so before an encoded word the space goes inside the tag's word."""
    text = tag.strip()
    if text.isascii():
        return text + " "
    if before_encoded_word:
        text += " "
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?= "


def tagged_subject(message: bytes, tag: str) -> str:
    """The new Subject value: the tag, then the first Subject as it arrived (unfolded)."""
    subjects = field_values(message, "subject")
    original = unfold(subjects[0]).strip() if subjects else ""
    return (encode_subject_tag(tag, original.startswith("=?")) + original).rstrip()


class ImpersonationCheck:
    """Warns about outside mail that shows a local address it does not come from."""

    name = "impersonation"

    def __init__(self, is_local_domain: IsLocalDomain, subject_tag: str) -> None:
        self.is_local_domain = is_local_domain
        self.subject_tag = subject_tag

    async def check(self, message: bytes, context: MessageContext) -> Verdict:
        if context.direction is not Direction.INBOUND:
            return Verdict(self.name, detail="not inbound")
        found = await find_resemblances(message, self.is_local_domain)
        if not found:
            return Verdict(self.name, remove_headers=(WARNING_FIELD,), detail="none")
        first = found[0]
        warning = (
            f"impersonation; field={first.field}; resembles={first.shown}; "
            "the sender is outside this mail system"
        )
        headers: list[tuple[str, str]] = [(WARNING_FIELD, warning)]
        removed = [WARNING_FIELD]
        if self.subject_tag.strip():
            headers.append(("Subject", tagged_subject(message, self.subject_tag)))
            removed.append("Subject")
        detail = " ".join(f"{r.field}:{r.shown}" for r in found)
        return Verdict(
            self.name,
            add_headers=tuple(headers),
            remove_headers=tuple(removed),
            detail=f"resembles {detail}",
        )
