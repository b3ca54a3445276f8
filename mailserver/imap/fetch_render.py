"""FETCH data from a cached message summary: ENVELOPE, BODY/BODYSTRUCTURE and BODY[section].

Pure functions over a `MessageSummary` (storage/message_summary.py) and the stored message
bytes; nothing here parses MIME again. Sizes are octets of the stored bytes, so what
BODYSTRUCTURE announces is exactly what BODY[section] sends.
"""

from __future__ import annotations

import re

from mailserver.imap.response import NIL, nstring, number, paren_list, string
from storage.message_summary import Address, Envelope, MessageSummary, MimePart

# Dovecot writes this for a multipart without any body part, which the grammar forbids
# (RFC 3501 section 9: body-type-mpart = 1*body SP media-subtype).
_EMPTY_PART = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
_EMPTY_PART_EXT = _EMPTY_PART[:-1] + b" NIL NIL NIL NIL)"

_SPECIFIERS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})


def _text(value: str | None, utf8: bool) -> bytes:
    """An nstring from a raw header value; undecodable bytes go back out as they came in."""
    if value is None:
        return NIL
    return nstring(value.encode("utf-8", "surrogateescape"), utf8=utf8)


def _address_list(addresses: list[Address], utf8: bool) -> bytes:
    # RFC 3501 section 9: env-from = "(" 1*address ")" / nil: no spaces between addresses.
    if not addresses:
        return NIL
    rendered = [
        paren_list(
            [
                _text(a.name, utf8),
                _text(a.route, utf8),
                _text(a.mailbox, utf8),
                _text(a.host, utf8),
            ]
        )
        for a in addresses
    ]
    return b"(" + b"".join(rendered) + b")"


def envelope_bytes(envelope: Envelope, *, utf8: bool = False) -> bytes:
    """The ENVELOPE structure (RFC 3501 7.4.2) of one envelope."""
    return paren_list(
        [
            _text(envelope.date, utf8),
            _text(envelope.subject, utf8),
            _address_list(envelope.from_, utf8),
            _address_list(envelope.sender or envelope.from_, utf8),
            _address_list(envelope.reply_to or envelope.from_, utf8),
            _address_list(envelope.to, utf8),
            _address_list(envelope.cc, utf8),
            _address_list(envelope.bcc, utf8),
            _text(envelope.in_reply_to, utf8),
            _text(envelope.message_id, utf8),
        ]
    )


def render_envelope(summary: MessageSummary, *, utf8: bool = False) -> bytes:
    """FETCH ENVELOPE of the message."""
    return envelope_bytes(summary.envelope, utf8=utf8)


def _params(params: list[tuple[str, str]], utf8: bool) -> bytes:
    if not params:
        return NIL
    items: list[bytes] = []
    for name, value in params:
        items.append(_text(name, utf8))
        items.append(_text(value, utf8))
    return paren_list(items)


def _extension_1part_tail(part: MimePart, utf8: bool) -> list[bytes]:
    """body-fld-dsp, body-fld-lang, body-fld-loc (shared by single parts and multiparts)."""
    if part.disposition is None:
        disposition = NIL
    else:
        disposition = paren_list(
            [_text(part.disposition, utf8), _params(part.disposition_params, utf8)]
        )
    if not part.language:
        language = NIL
    elif len(part.language) == 1:
        language = _text(part.language[0], utf8)
    else:
        language = paren_list([_text(tag, utf8) for tag in part.language])
    return [disposition, language, _text(part.location, utf8)]


def _part_structure(part: MimePart, extensible: bool, utf8: bool) -> bytes:
    if part.is_multipart:
        if part.children:
            children = b"".join(_part_structure(c, extensible, utf8) for c in part.children)
        else:
            children = _EMPTY_PART_EXT if extensible else _EMPTY_PART
        items = [children + b" " + string(part.subtype.encode("utf-8", "surrogateescape"))]
        if extensible:
            items.append(_params(part.params, utf8))
            items.extend(_extension_1part_tail(part, utf8))
        return paren_list(items)

    params = _params(part.params, utf8)
    if params == NIL and part.type.lower() == "text":
        params = b'("charset" "us-ascii")'
    items = [
        _text(part.type, utf8),
        _text(part.subtype, utf8),
        params,
        _text(part.content_id, utf8),
        _text(part.description, utf8),
        _text(part.encoding if part.encoding is not None else "7bit", utf8),
        number(part.size),
    ]
    if part.envelope is not None and part.children:
        # RFC 9051 7.5.2: message/rfc822 and message/global add envelope, body, lines.
        items.append(envelope_bytes(part.envelope, utf8=utf8))
        items.append(_part_structure(part.children[0], extensible, utf8))
        items.append(number(part.lines or 0))
    elif part.type.lower() == "text":
        items.append(number(part.lines or 0))
    if extensible:
        items.append(_text(part.md5, utf8))
        items.extend(_extension_1part_tail(part, utf8))
    return paren_list(items)


def render_bodystructure(summary: MessageSummary, extensible: bool, *, utf8: bool = False) -> bytes:
    """FETCH BODY (extensible=False) or BODYSTRUCTURE (with extension data, RFC 3501 7.4.2)."""
    return _part_structure(summary.root, extensible, utf8)


# --- BODY[section] ------------------------------------------------------------------------------


def _numbered_children(part: MimePart, top_of_message: bool) -> list[MimePart]:
    """The parts that numbers address below `part` (RFC 3501 6.4.5).

    In a message whose body is not multipart, part 1 is the body itself; below a
    message/rfc822 part, numbering continues in the encapsulated message.
    """
    if part.is_multipart:
        return part.children
    if top_of_message:
        return [part]
    if part.is_message and part.children:
        return _numbered_children(part.children[0], True)
    return []


def find_part(summary: MessageSummary, path: tuple[int, ...]) -> MimePart | None:
    """The part a section number names (() is the message itself), or None if none."""
    node = summary.root
    top = True
    for number_ in path:
        children = _numbered_children(node, top)
        if number_ < 1 or number_ > len(children):
            return None
        node = children[number_ - 1]
        top = False
    return node


_FIELD_LINES = re.compile(rb"[^\n]*\n|[^\n]+")


def _header_fields(header: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Split a header block into (lower-case name, field bytes with continuations) and
    the terminating blank line (b"" if the header has none)."""
    fields: list[tuple[bytes, bytes]] = []
    terminator = b""
    name = b""
    chunk: list[bytes] = []
    for line in _FIELD_LINES.findall(header):
        if line in (b"\n", b"\r\n"):
            terminator = line
            break
        if line[:1] in (b" ", b"\t"):
            if chunk:
                chunk.append(line)
            continue
        if chunk:
            fields.append((name, b"".join(chunk)))
        field_name, colon, _ = line.partition(b":")
        if colon:
            name, chunk = field_name.strip(b" \t").lower(), [line]
        else:
            name, chunk = b"", []
    if chunk:
        fields.append((name, b"".join(chunk)))
    return fields, terminator


def _select_fields(header: bytes, names: list[str], exclude: bool) -> bytes:
    wanted = {name.strip().lower().encode("ascii", "replace") for name in names}
    fields, terminator = _header_fields(header)
    kept = [data for name, data in fields if (name in wanted) != exclude]
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += terminator or b"\r\n"
    # RFC 3501 6.4.5: the blank line between header and body is included.
    return b"".join(kept) + (terminator or b"\r\n")


def section_bytes(
    raw: bytes,
    summary: MessageSummary,
    part: tuple[int, ...],
    specifier: str | None,
    fields: list[str] | None,
    not_fields: bool,
) -> bytes:
    """The bytes of BODY[section] (RFC 3501 6.4.5), cut from the stored message.

    `part` holds the section's part numbers, `specifier` is None, "HEADER", "HEADER.FIELDS",
    "HEADER.FIELDS.NOT", "TEXT" or "MIME" (case-insensitive); `fields` are the names for
    HEADER.FIELDS, and `not_fields` selects HEADER.FIELDS.NOT. A section that names no part
    (a part number past the end, HEADER or TEXT of a part that is not message/rfc822) gives
    b"", as Dovecot does. Raises ValueError for an unknown specifier or MIME without a part.
    """
    spec = specifier.upper() if specifier is not None else None
    if spec is not None and spec not in _SPECIFIERS:
        raise ValueError(f"unknown section specifier {specifier!r}")
    if spec == "HEADER.FIELDS.NOT":
        spec, not_fields = "HEADER.FIELDS", True
    if spec == "MIME" and not part:
        raise ValueError("MIME needs a part number (RFC 3501 6.4.5)")
    target = find_part(summary, part)
    if target is None:
        return b""
    if spec is None:
        if not part:
            return raw
        return raw[target.body_start : target.body_end]
    if spec == "MIME":
        return raw[target.header_start : target.body_start]
    # HEADER, HEADER.FIELDS and TEXT address a message: the whole one, or a message/rfc822.
    if part:
        if not (target.is_message and target.children):
            return b""
        message = target.children[0]
    else:
        message = summary.root
    if spec == "TEXT":
        return raw[message.body_start : message.body_end]
    header = raw[message.header_start : message.body_start]
    if spec == "HEADER":
        return header
    return _select_fields(header, fields or [], not_fields)
