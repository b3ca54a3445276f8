"""The text IMAP SEARCH BODY and TEXT look in, extracted once per message for the search index.

RFC 3501 / RFC 9051 section 6.4.4: BODY matches "the body of the message" and TEXT "the header
or body". The body of a message is everything after its header (RFC 5322 section 2.1), so
BODY covers, decoded: the header of every MIME part (attachment file names in
Content-Disposition and Content-Type, RFC 2047 and RFC 2231 decoded), the header of every
attached message, the preamble and epilogue of every multipart, and the bodies of text/* and
message/* parts (message/delivery-status, text/rfc822-headers: so bounces can be found) and of
parts without a Content-Type. Dovecot matches these too; binary bodies (image/*,
application/*) are not text and are left out. TEXT is the message header plus BODY.
"""

from __future__ import annotations

import re

from storage.message_summary import (
    MessageSummary,
    MimePart,
    decode_charset,
    decode_header_text,
    decode_transfer_encoding,
    html_to_text,
    split_header_fields,
)

_TEXT_TYPES = frozenset({"text", "message"})


def header_text(block: bytes) -> str:
    """The fields of a header block as "name value" lines, encoded words decoded."""
    return "\n".join(
        f"{name} {decode_header_text(value)}" for name, value in split_header_fields(block)
    )


def _part_header_text(raw: bytes, part: MimePart) -> str:
    text = header_text(raw[part.header_start : part.body_start])
    # RFC 2231 names (filename*=utf-8''...) are searchable by their decoded value too.
    names = [part.disposition_param("filename"), part.param("name")]
    decoded = [name for name in names if name and name not in text]
    return "\n".join([text, *decoded]) if decoded else text


def _leaf_text(raw: bytes, part: MimePart) -> str:
    data = decode_transfer_encoding(raw[part.body_start : part.body_end], part.encoding)
    text = decode_charset(data, part.param("charset"))
    return html_to_text(text) if part.subtype.lower() == "html" else text


def _delimiter_lines(part: MimePart) -> re.Pattern[str] | None:
    boundary = part.param("boundary")
    if not boundary:
        return None
    return re.compile(rf"^--{re.escape(boundary)}(?:--)?[ \t]*\r?$", re.MULTILINE)


def _between_parts(raw: bytes, part: MimePart) -> str:
    """A multipart's preamble, epilogue and anything else outside its body parts."""
    edges = [part.body_start]
    for child in part.children:
        edges.extend((child.header_start, child.body_end))
    edges.append(part.body_end)
    chunks = [raw[start:end] for start, end in zip(edges[::2], edges[1::2], strict=True)]
    text = decode_charset(b"".join(chunks), None)
    delimiters = _delimiter_lines(part)
    if delimiters is not None:
        text = delimiters.sub("", text)
    return text.strip()


def body_text(raw: bytes, summary: MessageSummary) -> str:
    """Decoded text of the body of ``raw`` as IMAP BODY searches it (see the module doc)."""
    texts: list[str] = []
    root = summary.root
    for part in root.walk():
        if part is not root:
            texts.append(_part_header_text(raw, part))
        if part.is_multipart:
            texts.append(_between_parts(raw, part))
        elif not part.children and part.type.lower() in _TEXT_TYPES:
            texts.append(_leaf_text(raw, part))
    return "\n".join(text for text in texts if text)
