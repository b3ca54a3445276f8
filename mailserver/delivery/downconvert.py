"""8-bit to 7-bit MIME conversion for servers that do not offer 8BITMIME (RFC 6152 3).

RFC 6152 3: a client with an 8-bit message for a server that did not advertise 8BITMIME must
either convert it to 7 bits by the rules of MIME (RFC 2045) or return it as undeliverable. We
convert: each leaf part whose body has octets above 127 is re-encoded, quoted-printable for text
that is mostly ASCII, base64 for the rest (the 1/8 threshold sendmail's mime8to7 uses: UTF-8
Vietnamese text has far more 8-bit octets than that, and base64 is then the smaller form), and
its Content-Transfer-Encoding field is replaced. Multiparts are walked part by part and
message/rfc822 bodies as messages (RFC 2046 5.2.1: they are never encoded themselves, only
their parts), so 7-bit parts and every header block keep their exact bytes.

What is not converted:
- header fields with raw 8-bit octets. In an SMTPUTF8 message (RFC 6532) they are UTF-8 and
  the client bounces it with 5.6.7 if the server lacks SMTPUTF8 (RFC 6531 3.2); in legacy mail
  they are in an unknown charset and guessing would corrupt them, so they go as they are
  (Postfix does the same);
- 8-bit octets in a multipart preamble or epilogue, which no reader shows: replaced by "?".

Pure functions over the CRLF message bytes the queue holds.
"""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

MAX_DEPTH = 32  # nesting deeper than this is left alone (hostile input)
_HIGH = re.compile(rb"[\x80-\xff]")
_HIGH_OCTETS = bytes(range(128, 256))
_CTE_FIELD = re.compile(rb"(?im)^content-transfer-encoding[ \t]*:.*(?:\r\n[ \t].*)*\r\n")


def has_8bit(data: bytes) -> bool:
    return _HIGH.search(data) is not None


def header_has_8bit(message: bytes) -> bool:
    """Raw 8-bit octets in the top-level header block (RFC 6532 UTF-8 headers, or legacy)."""
    header, _, _ = _split_entity(message)
    return has_8bit(header)


def to_seven_bit(message: bytes) -> bytes:
    """``message`` with every 8-bit body part re-encoded; unchanged when there is none."""
    if not has_8bit(message):
        return message
    header, separator, body = _split_entity(message)
    parsed = _parse_header(header)
    if parsed.get("MIME-Version") is None:
        # Not MIME at all: make it a text/plain MIME message so its body can be encoded (the
        # charset is UTF-8 if the bytes say so, else RFC 1428's unknown-8bit).
        if not has_8bit(body):
            return message
        charset = "utf-8" if _is_utf8(body) else "unknown-8bit"
        encoding, encoded = _encode_leaf(body, "text", "8bit")
        added = (
            b"MIME-Version: 1.0\r\n"
            + f"Content-Type: text/plain; charset={charset}\r\n".encode()
            + f"Content-Transfer-Encoding: {encoding}\r\n".encode()
        )
        header = _CTE_FIELD.sub(b"", _drop_field(header, b"content-type"))
        return header + added + (separator or b"\r\n") + encoded
    return _convert_entity(message, "text/plain", 0)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _split_entity(entity: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block with its last CRLF, the empty line, body). A part may have no header."""
    if entity.startswith(b"\r\n"):
        return b"", b"\r\n", entity[2:]
    end = entity.find(b"\r\n\r\n")
    if end < 0:
        return entity, b"", b""
    return entity[: end + 2], b"\r\n", entity[end + 4 :]


def _parse_header(header: bytes) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(header + b"\r\n")


def _drop_field(header: bytes, name: bytes) -> bytes:
    pattern = re.compile(rb"(?im)^" + re.escape(name) + rb"[ \t]*:.*(?:\r\n[ \t].*)*\r\n")
    return pattern.sub(b"", header)


def _with_encoding(header: bytes, encoding: str) -> bytes:
    """The header block with its Content-Transfer-Encoding field set to ``encoding`` (the
    field replaced where it stood, or added at the end)."""
    field = f"Content-Transfer-Encoding: {encoding}\r\n".encode()
    if _CTE_FIELD.search(header):
        return _CTE_FIELD.sub(lambda _: field, header, count=1)
    return header + field


def _convert_entity(entity: bytes, default_type: str, depth: int) -> bytes:
    if not has_8bit(entity) or depth > MAX_DEPTH:
        return entity
    header, separator, body = _split_entity(entity)
    if not has_8bit(body):
        return entity  # only the header block is 8-bit: nothing MIME can do (see above)
    parsed = _parse_header(header)
    content_type = (
        parsed.get_content_type() if parsed.get("Content-Type") is not None else default_type
    )
    declared = str(parsed.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    maintype = content_type.partition("/")[0]
    if maintype == "multipart":
        boundary = parsed.get_boundary()
        if not boundary:  # no parts can be found: all of it is preamble
            return _composite(header, declared, separator, _HIGH.sub(b"?", body))
        child_default = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
        marker = boundary.encode("ascii", "surrogateescape")
        converted = _convert_multipart(body, marker, child_default, depth)
        return _composite(header, declared, separator, converted)
    if content_type in ("message/rfc822", "message/global"):
        inner = _convert_entity(body, "text/plain", depth + 1)
        return _composite(header, declared, separator, inner)
    if declared == "base64":
        # Stray 8-bit octets in base64 are ignored by every decoder: dropping them changes
        # nothing a reader sees.
        return header + separator + _HIGH.sub(b"", body)
    encoding, encoded = _encode_leaf(body, maintype, declared)
    return _with_encoding(header, encoding) + (separator or b"\r\n") + encoded


def _composite(header: bytes, declared: str, separator: bytes, body: bytes) -> bytes:
    """A multipart or message/rfc822 entity around its converted body. Their encoding can only
    be 7bit, 8bit or binary (RFC 2045 6.4): a declared 8bit becomes 7bit once nothing 8-bit is
    left inside (an inner 8-bit header block keeps it 8bit)."""
    if declared in ("8bit", "binary") and not has_8bit(body):
        header = _with_encoding(header, "7bit")
    return header + separator + body


def _convert_multipart(body: bytes, boundary: bytes, child_default: str, depth: int) -> bytes:
    # RFC 2046 5.1.1: a delimiter is CRLF "--" boundary, padding, CRLF; the CRLF before it
    # belongs to the delimiter, not to the part.
    delimiter = re.compile(rb"(?:\A|\r\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?=\r\n|\Z)")
    matches = list(delimiter.finditer(body))
    if not matches:
        return _HIGH.sub(b"?", body)  # no parts: all of it is preamble
    out = [_HIGH.sub(b"?", body[: matches[0].start()])]
    for index, match in enumerate(matches):
        out.append(match.group(0))
        if match.group(1):  # the close delimiter: the rest is epilogue
            out.append(_HIGH.sub(b"?", body[match.end() :]))
            return b"".join(out)
        start = match.end() + 2 if body[match.end() : match.end() + 2] == b"\r\n" else match.end()
        out.append(body[match.end() : start])
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        out.append(_convert_entity(body[start:end], child_default, depth + 1))
    return b"".join(out)


def _decoded(body: bytes, declared: str) -> bytes:
    """The octets a reader would get from ``body``: quoted-printable with raw 8-bit octets
    (which readers pass through) is decoded so it can be encoded again; 7bit, 8bit, binary
    and unknown encodings are the octets themselves."""
    return binascii.a2b_qp(body) if declared == "quoted-printable" else body


def _encode_leaf(body: bytes, maintype: str, declared: str) -> tuple[str, bytes]:
    data = _decoded(body, declared)
    if maintype == "text":
        eight = len(data) - len(data.translate(None, _HIGH_OCTETS))
        if eight * 8 <= len(data):
            return "quoted-printable", _quoted_printable(data)
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return "base64", encoded


def _quoted_printable(data: bytes) -> bytes:
    """RFC 2045 6.7, line by line so CRLF stay line breaks (text's canonical form); a bare CR
    or LF inside a line is encoded."""
    trailing = data.endswith(b"\r\n")
    lines = data.split(b"\r\n")
    if trailing:
        lines.pop()
    # b2a_qp breaks long lines with "=" LF; any LF in its output is such a soft break.
    encoded = [
        binascii.b2a_qp(line, quotetabs=False, istext=False).replace(b"\n", b"\r\n")
        for line in lines
    ]
    return b"\r\n".join(encoded) + (b"\r\n" if trailing else b"")
