"""What the checks read from a message's header: fields, From addresses, tag=value lists.

Pure functions over bytes, built on storage.message_summary's header splitting and address
parser (the same reading of a message that IMAP ENVELOPE gives).
"""

from __future__ import annotations

from storage.message_summary import parse_address_list, split_header_fields, unfold

MAX_HEADER_BYTES = 1024 * 1024  # a header larger than this is read only up to here


def header_block(message: bytes) -> bytes:
    """The header section (up to and including the blank line), bounded in size."""
    end = message.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES)
    if end >= 0:
        return message[: end + 4]
    end = message.find(b"\n\n", 0, MAX_HEADER_BYTES)
    return message[: end + 2] if end >= 0 else message[:MAX_HEADER_BYTES]


def header_fields(message: bytes) -> list[tuple[str, str]]:
    """(lower-case name, raw value) of every header field, in order."""
    return split_header_fields(header_block(message))


def field_values(message: bytes, name: str) -> list[str]:
    name = name.lower()
    return [value for field, value in header_fields(message) if field == name]


def field_addresses(message: bytes, name: str) -> list[str]:
    """Every "mailbox@host" of every field ``name`` (From, Sender, Resent-From...), lower-cased
    (groups and bare names skipped)."""
    addresses: list[str] = []
    for value in field_values(message, name):
        for address in parse_address_list(value):
            if address.mailbox and address.host:
                addresses.append(f"{address.mailbox}@{address.host}".lower())
    return addresses


def from_addresses(message: bytes) -> list[str]:
    """Every "mailbox@host" of every From field, lower-cased (groups and bare names skipped)."""
    return field_addresses(message, "from")


def field_domains(message: bytes, name: str) -> list[str]:
    """The distinct domains of the addresses of every field ``name``, in order."""
    domains: list[str] = []
    for address in field_addresses(message, name):
        domain = address.rpartition("@")[2].rstrip(".")
        if domain not in domains:
            domains.append(domain)
    return domains


def from_domains(message: bytes) -> list[str]:
    """The distinct domains of the RFC5322.From addresses, in order."""
    return field_domains(message, "from")


def tag_list(value: str) -> dict[str, str]:
    """A DKIM-style "tag=value; ..." list (RFC 6376 3.2), whitespace removed; first tag wins."""
    tags: dict[str, str] = {}
    for part in unfold(value).split(";"):
        name, sep, tag_value = part.partition("=")
        if sep:
            tags.setdefault(name.strip(), "".join(tag_value.split()))
    return tags
