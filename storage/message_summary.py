"""The per-message summary cached at delivery: MIME part tree with byte offsets, envelope, search.

`summarize_message(raw)` parses a message once, with our own byte-offset MIME parser (the
`email` package loses offsets), and returns a `MessageSummary`: for the whole message and for
every part, where its header and body lie in `raw`, its Content-* fields (as IMAP BODYSTRUCTURE
returns them), and for message/rfc822 and message/global parts the encapsulated envelope and
part tree. The summary is stored as compact JSON (`to_json` / `from_json`) in the message row, so
IMAP FETCH of ENVELOPE, BODYSTRUCTURE and BODY[section] never re-parses the message.

Behaviour on broken input follows the major IMAP servers (Dovecot): a delimiter line of this or
any enclosing multipart ends a part, the innermost boundary first (RFC 2046 5.1.1; trailing
blanks are allowed, trailing garbage only after the innermost boundary); a missing close
delimiter makes the part extend to the end of its parent; a multipart without a boundary
parameter, or an invalid Content-Type, is text/plain (RFC 2045 5.2). Work is bounded: MAX_DEPTH
nesting levels and MAX_PARTS parts; a multipart or message part beyond either limit, and a
message/rfc822 part whose body is base64 or quoted-printable, is kept as an opaque
application/octet-stream leaf.

Header values are kept raw (as IMAP returns them; undecodable bytes survive through
surrogateescape), and decoded (RFC 2047 encoded words, any charset) in `search_headers`.
`text_for_search` gives the decoded text of the text/plain and text/html parts.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

MAX_DEPTH = 100
MAX_PARTS = 5000

_ENC_ERRORS = "surrogateescape"
_OPAQUE_TYPE = ("application", "octet-stream")
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary", ""})

_BLANK_LINE = re.compile(rb"\n\r?\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAKS = re.compile(r"[\r\n]")


def _to_str(data: bytes) -> str:
    return data.decode("utf-8", _ENC_ERRORS)


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", _ENC_ERRORS)


# --- data ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Address:
    """One envelope address (RFC 3501 7.4.2): raw name, source route, mailbox, host.

    Group syntax is written as RFC 3501 says: a start marker with host None and the group name
    in `mailbox`, then the members, then an end marker with every field None.
    """

    name: str | None
    route: str | None
    mailbox: str | None
    host: str | None

    def to_list(self) -> list[str | None]:
        return [self.name, self.route, self.mailbox, self.host]

    @classmethod
    def from_list(cls, data: list[str | None]) -> Address:
        return cls(data[0], data[1], data[2], data[3])


@dataclass(slots=True)
class Envelope:
    """RFC 3501 7.4.2 / RFC 9051 7.5.2 envelope, with raw header values (None = absent).

    `sender` and `reply_to` already hold `from_` when their header is absent or empty.
    """

    date: str | None = None
    subject: str | None = None
    from_: list[Address] = field(default_factory=list)
    sender: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    in_reply_to: str | None = None
    message_id: str | None = None

    def to_list(self) -> list[Any]:
        def addrs(values: list[Address], default: list[Address] | None = None) -> Any:
            if default is not None and values == default:
                return 0  # "same as from": most messages have no Sender or Reply-To
            return [a.to_list() for a in values] or None

        return _trim(
            [
                self.date,
                self.subject,
                addrs(self.from_),
                addrs(self.sender, self.from_),
                addrs(self.reply_to, self.from_),
                addrs(self.to),
                addrs(self.cc),
                addrs(self.bcc),
                self.in_reply_to,
                self.message_id,
            ]
        )

    @classmethod
    def from_list(cls, data: list[Any]) -> Envelope:
        data = data + [None] * (10 - len(data))

        def addrs(value: Any, default: list[Address] | None = None) -> list[Address]:
            if value == 0 and default is not None:
                return list(default)
            return [Address.from_list(a) for a in value or ()]

        from_ = addrs(data[2])
        return cls(
            date=data[0],
            subject=data[1],
            from_=from_,
            sender=addrs(data[3], from_),
            reply_to=addrs(data[4], from_),
            to=addrs(data[5]),
            cc=addrs(data[6]),
            bcc=addrs(data[7]),
            in_reply_to=data[8],
            message_id=data[9],
        )


@dataclass(slots=True)
class MimePart:
    """One MIME entity: offsets into the raw message and its Content-* header fields.

    `raw[header_start:body_start]` is the header including its terminating blank line (the
    header end is the body start), `raw[body_start:body_end]` the body. `params` holds the
    Content-Type parameters as IMAP returns them: RFC 2231 continuations are joined, an
    extended value stays in its `name*` = charset'lang'%XX form; `param()` decodes them.
    Strings are raw header text (leading/trailing blanks and line breaks removed).
    """

    header_start: int
    body_start: int
    body_end: int
    type: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    content_id: str | None = None
    description: str | None = None
    encoding: str | None = None
    md5: str | None = None
    disposition: str | None = None
    disposition_params: list[tuple[str, str]] = field(default_factory=list)
    language: list[str] | None = None
    location: str | None = None
    lines: int | None = None
    # Multipart: the body parts. message/rfc822 and message/global: exactly one, the
    # encapsulated message's top-level entity (its header is the encapsulated header).
    children: list[MimePart] = field(default_factory=list)
    envelope: Envelope | None = None

    @property
    def header_end(self) -> int:
        return self.body_start

    @property
    def size(self) -> int:
        """Body size in octets, as BODYSTRUCTURE reports it."""
        return self.body_end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.type.lower() == "multipart"

    @property
    def is_message(self) -> bool:
        """True for message/rfc822 and message/global parts that carry a parsed message."""
        return self.envelope is not None

    def param(self, name: str) -> str | None:
        """The decoded value of a Content-Type parameter (RFC 2231 charset/language too)."""
        return _decoded_param(self.params, name)

    def disposition_param(self, name: str) -> str | None:
        """The decoded value of a Content-Disposition parameter, e.g. "filename"."""
        return _decoded_param(self.disposition_params, name)

    def walk(self) -> Iterator[MimePart]:
        """This part and all parts below it, depth first, in document order."""
        stack = [self]
        while stack:
            part = stack.pop()
            yield part
            stack.extend(reversed(part.children))

    def to_list(self) -> list[Any]:
        return _trim(
            [
                self.header_start,
                self.body_start,
                self.body_end,
                f"{self.type}/{self.subtype}",
                self.lines,
                [list(p) for p in self.params] or None,
                self.content_id,
                self.description,
                self.encoding,
                self.md5,
                self.disposition,
                [list(p) for p in self.disposition_params] or None,
                self.language,
                self.location,
                [c.to_list() for c in self.children] or None,
                self.envelope.to_list() if self.envelope is not None else None,
            ]
        )

    @classmethod
    def from_list(cls, data: list[Any]) -> MimePart:
        data = data + [None] * (16 - len(data))
        type_, _, subtype = data[3].partition("/")
        return cls(
            header_start=data[0],
            body_start=data[1],
            body_end=data[2],
            type=type_,
            subtype=subtype,
            lines=data[4],
            params=[(p[0], p[1]) for p in data[5] or ()],
            content_id=data[6],
            description=data[7],
            encoding=data[8],
            md5=data[9],
            disposition=data[10],
            disposition_params=[(p[0], p[1]) for p in data[11] or ()],
            language=data[12],
            location=data[13],
            children=[cls.from_list(c) for c in data[14] or ()],
            envelope=Envelope.from_list(data[15]) if data[15] is not None else None,
        )


@dataclass(slots=True)
class SearchHeaders:
    """Decoded header values for SEARCH (RFC 2047 decoded, unfolded)."""

    from_: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    date: datetime | None = None
    message_id: str | None = None


@dataclass(slots=True)
class MessageSummary:
    """Everything FETCH and SEARCH need from a message without re-parsing it."""

    size: int
    envelope: Envelope
    root: MimePart
    search_headers: SearchHeaders
    part_count: int = 1
    truncated: bool = False  # a depth or part-count limit made some parts opaque

    def to_json(self) -> bytes:
        """Compact JSON (UTF-8; raw 8-bit header bytes travel as \\udcXX escapes)."""
        payload = [
            1,  # format version
            self.size,
            self.envelope.to_list(),
            self.root.to_list(),
            self.part_count,
            1 if self.truncated else 0,
        ]
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        # Lone surrogates (undecodable header bytes) become JSON \udcXX escapes.
        return text.encode("utf-8", "backslashreplace")

    @classmethod
    def from_json(cls, data: bytes) -> MessageSummary:
        payload = json.loads(data)
        if not isinstance(payload, list) or not payload or payload[0] != 1:
            raise ValueError("unknown message summary format")
        envelope = Envelope.from_list(payload[2])
        return cls(
            size=payload[1],
            envelope=envelope,
            root=MimePart.from_list(payload[3]),
            # Derived from the envelope (no MIME parsing), so not stored twice.
            search_headers=build_search_headers(envelope),
            part_count=payload[4],
            truncated=bool(payload[5]),
        )


def _trim(values: list[Any]) -> list[Any]:
    while values and values[-1] is None:
        values.pop()
    return values


# --- header fields ---------------------------------------------------------------------------


def split_header_fields(block: bytes) -> list[tuple[str, str]]:
    """Split a header block into (lower-case name, raw value) pairs, in order.

    The value keeps its folding line breaks (it is raw); leading blanks after the colon and
    the final line break are removed. Lines without a colon are skipped, as Dovecot does.
    """
    fields: list[tuple[str, str]] = []
    current: list[bytes] | None = None
    for line in _LINES.findall(block):
        if line in (b"\n", b"\r\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        if current is not None:
            fields.append(_finish_field(current))
        name, colon, _ = line.partition(b":")
        name = name.strip(b" \t")
        current = [line] if colon and name and not _BAD_NAME.search(name) else None
    if current is not None:
        fields.append(_finish_field(current))
    return fields


_LINES = re.compile(rb"[^\n]*\n|[^\n]+")
_BAD_NAME = re.compile(rb"[\x00-\x20\x7f]")


def _finish_field(lines: list[bytes]) -> tuple[str, str]:
    name, _, value = b"".join(lines).partition(b":")
    text = _to_str(value).lstrip(" \t").rstrip("\r\n")
    return name.strip(b" \t").decode("ascii", "replace").lower(), text


def unfold(value: str) -> str:
    """Remove line breaks of folded header lines (RFC 5322 2.2.3), keeping the blanks."""
    return _LINE_BREAKS.sub("", value)


def _first(fields: list[tuple[str, str]], name: str) -> str | None:
    for key, value in fields:
        if key == name:
            return value
    return None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    return unfold(value).strip(" \t")


# --- Content-Type and friends (RFC 2045 5.1, RFC 2183, RFC 2231) --------------------------------

_TSPECIALS = set('()<>@,;:\\"/[]?=')


class _Lexer:
    """A forgiving cursor over a structured header value: tokens, quoted strings, comments."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_cfws(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n":
                self.pos += 1
            elif char == "(":
                self.comment()
            else:
                break

    def comment(self) -> str:
        """Read a (possibly nested) comment at the cursor; return its text."""
        text = self.text
        depth = 0
        out: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(text):
                out.append(text[self.pos])
                self.pos += 1
            elif char == "(":
                if depth:
                    out.append(char)
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    break
                out.append(char)
            else:
                out.append(char)
        return "".join(out)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self, stop: str = "") -> str:
        start = self.pos
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n" or char in _TSPECIALS or char in stop:
                break
            self.pos += 1
        return text[start : self.pos]

    def quoted(self) -> str:
        """Read a quoted string at the cursor (unterminated: to the end)."""
        text = self.text
        self.pos += 1
        out: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(text):
                out.append(text[self.pos])
                self.pos += 1
            elif char == '"':
                break
            elif char not in "\r\n":
                out.append(char)
        return "".join(out)


def _parse_params(lex: _Lexer) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    while True:
        lex.skip_cfws()
        if lex.pos >= len(lex.text):
            break
        if lex.peek() != ";":
            # Junk between parameters: skip to the next ";".
            next_semi = lex.text.find(";", lex.pos)
            if next_semi < 0:
                break
            lex.pos = next_semi
        lex.pos += 1
        lex.skip_cfws()
        name = lex.token()
        lex.skip_cfws()
        if not name or lex.peek() != "=":
            continue
        lex.pos += 1
        lex.skip_cfws()
        if lex.peek() == '"':
            value = lex.quoted()
        else:
            start = lex.pos
            while lex.pos < len(lex.text) and lex.text[lex.pos] not in "; \t\r\n":
                lex.pos += 1
            value = lex.text[start : lex.pos]
        params.append((name, value))
    return _join_rfc2231(params)


_SECTION = re.compile(r"^(.+?)\*(\d+)(\*?)$")


def _join_rfc2231(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Join RFC 2231 section 3 continuations (name*0, name*1*, ...) into one parameter.

    If any section is extended (charset'lang'%XX, RFC 2231 section 4), the result is "name*"
    with plain sections %-encoded, which is what Dovecot returns in BODYSTRUCTURE.
    """
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    first_name: dict[str, str] = {}
    order: list[tuple[str, str] | str] = []
    for name, value in params:
        match = _SECTION.match(name)
        if match is None:
            order.append((name, value))
            continue
        base = match.group(1)
        key = base.lower()
        if key not in sections:
            sections[key] = {}
            first_name[key] = base
            order.append(key)
        number = int(match.group(2)) if len(match.group(2)) < 6 else 10**6
        sections[key].setdefault(number, (value, bool(match.group(3))))
    if not sections:
        return params
    joined: list[tuple[str, str]] = []
    for item in order:
        if isinstance(item, tuple):
            joined.append(item)
            continue
        parts = sections[item]
        run: list[tuple[str, bool]] = []
        index = 0
        while index in parts:
            run.append(parts[index])
            index += 1
        if not run:  # no section 0: keep what we have, in number order
            run = [parts[k] for k in sorted(parts)]
        if any(extended for _, extended in run):
            pieces = []
            for i, (value, extended) in enumerate(run):
                if extended or (i == 0 and "'" in value):
                    pieces.append(value)
                else:
                    prefix = "''" if i == 0 else ""
                    pieces.append(prefix + urllib.parse.quote(value, safe="", errors=_ENC_ERRORS))
            joined.append((first_name[item] + "*", "".join(pieces)))
        else:
            joined.append((first_name[item], "".join(value for value, _ in run)))
    return joined


def _decoded_param(params: list[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    for key, value in params:
        low = key.lower()
        if low == wanted + "*":
            return decode_rfc2231_value(value)
        if low == wanted:
            return decode_header_text(value)
    return None


def decode_rfc2231_value(value: str) -> str:
    """Decode an RFC 2231 extended value `charset'language'%XX...` to text."""
    charset, sep1, rest = value.partition("'")
    _language, sep2, encoded = rest.partition("'")
    if not (sep1 and sep2):
        charset, encoded = "", value
    data = urllib.parse.unquote_to_bytes(_to_bytes(encoded))
    return decode_charset(data, charset)


def _parse_content_type(value: str | None) -> tuple[str, str, list[tuple[str, str]]] | None:
    """Parse `type/subtype; params`; None if absent or syntactically invalid."""
    if value is None:
        return None
    lex = _Lexer(unfold(value))
    lex.skip_cfws()
    type_ = lex.token()
    lex.skip_cfws()
    if not type_ or lex.peek() != "/":
        return None
    lex.pos += 1
    lex.skip_cfws()
    subtype = lex.token()
    if not subtype:
        return None
    return type_, subtype, _parse_params(lex)


def _parse_disposition(value: str | None) -> tuple[str | None, list[tuple[str, str]]]:
    if value is None:
        return None, []
    lex = _Lexer(unfold(value))
    lex.skip_cfws()
    kind = lex.token()
    if not kind:
        return None, []
    return kind, _parse_params(lex)


def _parse_language(value: str | None) -> list[str] | None:
    if value is None:
        return None
    lex = _Lexer(unfold(value))
    tags: list[str] = []
    while lex.pos < len(lex.text):
        lex.skip_cfws()
        tag = lex.token(stop=",")
        if tag:
            tags.append(tag)
        elif lex.pos < len(lex.text):
            lex.pos += 1
    return tags or None


# --- RFC 2047 encoded words and charsets -------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
# Labels seen in mail that Python spells differently. VISCII and TCVN3 have no Python codec;
# storage/vn_charsets.py registers them with codecs, and codecs.lookup then finds them.
_CHARSET_ALIASES = {
    "windows-1258": "cp1258",
    "x-cp1258": "cp1258",
    "ks_c_5601-1987": "cp949",
    "x-sjis": "shift_jis",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}
# Names that say nothing about the bytes: decide from the bytes themselves.
_UNINFORMATIVE = frozenset({"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown"})


def lookup_charset(charset: str) -> codecs.CodecInfo | None:
    """The codec for a MIME charset name, or None if unknown (windows-1258, VISCII, TCVN3...)."""
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not name or len(name) > 40:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # Only text encodings: "base64" or "rot13" are codecs too, but not charsets.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info


def decode_charset(data: bytes, charset: str | None) -> str:
    """Decode bytes in a MIME charset; never fails.

    A known charset decodes with U+FFFD for bad bytes. An unknown, missing or uninformative
    charset (us-ascii with 8-bit bytes is common) tries strict UTF-8, then Latin-1.
    """
    name = (charset or "").strip().lower()
    if name not in _UNINFORMATIVE:
        info = lookup_charset(name)
        if info is not None:
            try:
                return info.decode(data, "replace")[0]
            except Exception:  # a broken third-party codec must not break delivery
                pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_word_payload(encoding: str, payload: str) -> bytes:
    data = payload.encode("ascii", "replace")
    if encoding in "Bb":
        return _lenient_base64(data)
    return binascii.a2b_qp(data.replace(b"_", b" "), header=True)


def decode_header_text(value: str) -> str:
    """Decode RFC 2047 encoded words in an unstructured value; unfold; never fails.

    Whitespace between adjacent encoded words is dropped (RFC 2047 section 6.2), and adjacent
    words in the same charset are joined before decoding, so a multi-byte character split over
    two words (common with Vietnamese UTF-8) survives. Raw 8-bit text is read as UTF-8
    (RFC 6532) or, failing that, Latin-1.
    """
    text = unfold(value)
    out: list[str] = []
    pending: bytes = b""
    pending_charset = ""
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        if pending and between.strip(" \t"):
            out.append(decode_charset(pending, pending_charset))
            pending = b""
        if between and (not pending or between.strip(" \t")):
            out.append(_decode_raw_text(between))
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 section 5: charset*language
        chunk = _decode_word_payload(match.group(2), match.group(3))
        if pending and charset.lower() != pending_charset.lower():
            out.append(decode_charset(pending, pending_charset))
            pending = b""
        pending += chunk
        pending_charset = charset
        pos = match.end()
    if pending:
        out.append(decode_charset(pending, pending_charset))
    if pos < len(text):
        out.append(_decode_raw_text(text[pos:]))
    return "".join(out)


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _decode_raw_text(text: str) -> str:
    """Raw header text: valid UTF-8 (RFC 6532) was decoded already; a stray undecodable
    byte is read as Latin-1 rather than spoiling the rest."""
    return _ESCAPED_BYTE.sub(lambda m: chr(ord(m.group()) - 0xDC00), text)


# --- addresses (RFC 5322 3.4, with obsolete syntax) -----------------------------------------------

_ADDR_SPECIALS = '()<>@,;:\\".[]'


def _address_tokens(text: str) -> list[tuple[str, str]]:
    """Tokenise an address list: kinds "atom", "qs" (quoted string), "comment", "lit", or a
    special character as its own kind."""
    lex = _Lexer(text)
    tokens: list[tuple[str, str]] = []
    while lex.pos < len(text):
        char = text[lex.pos]
        if char in " \t\r\n":
            lex.pos += 1
        elif char == "(":
            tokens.append(("comment", lex.comment()))
        elif char == '"':
            tokens.append(("qs", lex.quoted()))
        elif char == "[":
            end = text.find("]", lex.pos)
            end = len(text) if end < 0 else end + 1
            tokens.append(("lit", text[lex.pos : end]))
            lex.pos = end
        elif char in _ADDR_SPECIALS:
            tokens.append((char, char))
            lex.pos += 1
        else:
            start = lex.pos
            while lex.pos < len(text) and text[lex.pos] not in _ADDR_SPECIALS + " \t\r\n":
                lex.pos += 1
            tokens.append(("atom", text[start : lex.pos]))
    return tokens


def parse_address_list(value: str | None) -> list[Address]:
    """Parse an address-list header value into envelope addresses (groups flattened with
    RFC 3501 start/end markers). Forgiving: garbage yields what can be salvaged."""
    if value is None:
        return []
    tokens = [t for t in _address_tokens(unfold(value))]
    result: list[Address] = []
    index = 0
    in_group = False
    count = len(tokens)
    while index < count:
        kind = tokens[index][0]
        if kind == ",":
            index += 1
            continue
        if kind == ";":
            if in_group:
                result.append(Address(None, None, None, None))
                in_group = False
            index += 1
            continue
        # Gather the phrase / local part up to the token that says what this is.
        start = index
        while index < count and tokens[index][0] not in "<@:,;":
            index += 1
        stop = tokens[index][0] if index < count else ""
        words = tokens[start:index]
        if stop == ":" and not in_group:
            result.append(Address(None, None, _phrase(words) or "", None))
            in_group = True
            index += 1
            continue
        if stop == "<":
            index, address = _angle_address(tokens, index + 1, _phrase(words))
            if address is not None:
                result.append(address)
            continue
        if stop == "@":
            local = _local_part(words)
            index += 1
            domain_start = index
            while index < count and tokens[index][0] not in ",;<:":
                index += 1
            domain_tokens = tokens[domain_start:index]
            host = _domain(domain_tokens)
            comments = [t[1] for t in words + domain_tokens if t[0] == "comment"]
            name = comments[-1].strip() if comments and comments[-1].strip() else None
            result.append(Address(name, None, local, host))
            continue
        if stop == ":":  # a colon inside a group: not valid, skip it
            index += 1
        local = _local_part(words)
        if local:
            result.append(Address(None, None, local, ""))
    if in_group:
        result.append(Address(None, None, None, None))
    return result


def _angle_address(
    tokens: list[tuple[str, str]], index: int, name: str | None
) -> tuple[int, Address | None]:
    count = len(tokens)
    start = index
    while index < count and tokens[index][0] != ">":
        index += 1
    inner = tokens[start:index]
    index += 1  # the ">" (or past the end)
    inner = [t for t in inner if t[0] != "comment"]
    route: str | None = None
    # obs-route: "@a,@b:" before the addr-spec (RFC 5322 4.4).
    colon = next((i for i, t in enumerate(inner) if t[0] == ":"), -1)
    if inner and inner[0][0] == "@" and colon > 0:
        route = "".join(t[1] if t[0] != "qs" else f'"{t[1]}"' for t in inner[:colon])
        inner = inner[colon + 1 :]
    at = max((i for i, t in enumerate(inner) if t[0] == "@"), default=-1)
    if at >= 0:
        local = _local_part(inner[:at])
        host = _domain(inner[at + 1 :])
    else:
        local, host = _local_part(inner), ""
    if not inner and not name:
        return index, None
    return index, Address(name, route, local, host)


def _phrase(words: list[tuple[str, str]]) -> str | None:
    parts: list[str] = []
    for kind, text in words:
        if kind in ("atom", "qs", "lit"):
            parts.append(text)
        elif kind == ".":
            if parts:
                parts[-1] += "."
            else:
                parts.append(".")
    phrase = " ".join(parts).strip()
    return phrase or None


def _local_part(words: list[tuple[str, str]]) -> str:
    return "".join(text for kind, text in words if kind != "comment")


def _domain(words: list[tuple[str, str]]) -> str:
    return "".join(text for kind, text in words if kind not in ("comment", "qs"))


def _display_addresses(addresses: list[Address]) -> str:
    """A decoded, human-readable form of an address list, for SEARCH FROM/TO/CC/BCC."""
    shown: list[str] = []
    for address in addresses:
        if address.host is None:
            if address.mailbox is not None:
                shown.append(decode_header_text(address.mailbox) + ":")
            continue
        email = address.mailbox or ""
        if address.host:
            email += "@" + address.host
        if address.name:
            shown.append(f"{decode_header_text(address.name)} <{email}>")
        else:
            shown.append(email)
    return ", ".join(shown)


def build_envelope(fields: list[tuple[str, str]]) -> Envelope:
    """The RFC 3501 7.4.2 envelope from a message's header fields (first of each kind)."""
    from_ = parse_address_list(_first(fields, "from"))
    sender = parse_address_list(_first(fields, "sender")) or list(from_)
    reply_to = parse_address_list(_first(fields, "reply-to")) or list(from_)
    return Envelope(
        date=_clean(_first(fields, "date")),
        subject=_clean(_first(fields, "subject")),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=parse_address_list(_first(fields, "to")),
        cc=parse_address_list(_first(fields, "cc")),
        bcc=parse_address_list(_first(fields, "bcc")),
        in_reply_to=_clean(_first(fields, "in-reply-to")),
        message_id=_clean(_first(fields, "message-id")),
    )


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def build_search_headers(envelope: Envelope) -> SearchHeaders:
    """Decoded From, To, Cc, Bcc, Subject, parsed Date and Message-ID for SEARCH."""
    return SearchHeaders(
        from_=_display_addresses(envelope.from_),
        to=_display_addresses(envelope.to),
        cc=_display_addresses(envelope.cc),
        bcc=_display_addresses(envelope.bcc),
        subject=decode_header_text(envelope.subject or ""),
        date=_parse_date(envelope.date),
        message_id=envelope.message_id,
    )


# --- the structure parser ------------------------------------------------------------------------


@dataclass(slots=True)
class _Delimiter:
    """A delimiter line found in the body: which boundary, where, and whether it closes."""

    line_start: int
    next_line: int
    level: int  # index of the matched boundary in the stack (innermost = highest)
    closing: bool


class _StructureParser:
    """Sequential, single-pass MIME parser over bytes; recursion bounded by MAX_DEPTH."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.part_count = 0
        self.truncated = False
        self._tables: dict[tuple[bytes, ...], dict[bytes, int]] = {}
        # The last blank-line search: (searched from, match start, match end); -1 = none.
        self._blank: tuple[int, int, int] = (len(raw) + 1, -1, -1)

    def _table(self, stack: tuple[bytes, ...]) -> dict[bytes, int]:
        table = self._tables.get(stack)
        if table is None:
            # Inner boundaries overwrite outer ones: the innermost multipart wins.
            table = {boundary.rstrip(b" \t"): level for level, boundary in enumerate(stack)}
            self._tables[stack] = table
        return table

    def find_delimiter(
        self, pos: int, stack: tuple[bytes, ...], endpos: int | None = None
    ) -> _Delimiter | None:
        """The first delimiter line of any boundary in `stack` at or after line start `pos`.

        A line "--" + boundary, optionally "--", then blanks, matches any boundary of the
        stack (RFC 2046 5.1.1). Trailing garbage is tolerated for the innermost boundary only,
        as a prefix match, which keeps the cost per candidate line constant whatever the depth.
        """
        if not stack:
            return None
        raw = self.raw
        limit = len(raw) if endpos is None else endpos
        table = self._table(stack)
        innermost = stack[-1]
        candidate = pos if raw.startswith(b"--", pos) and pos < limit else -1
        if candidate >= 0 and pos > 0 and raw[pos - 1 : pos] != b"\n":
            candidate = -1
        while True:
            if candidate < 0:
                found = raw.find(b"\n--", pos, limit)
                if found < 0:
                    return None
                candidate = found + 1
            line_end = raw.find(b"\n", candidate + 2)
            next_line = len(raw) if line_end < 0 else line_end + 1
            text = raw[candidate + 2 : next_line].rstrip(b" \t\r\n")
            level = table.get(text)
            if level is not None:
                return _Delimiter(candidate, next_line, level, False)
            if text.endswith(b"--"):
                level = table.get(text[:-2])
                if level is not None:
                    return _Delimiter(candidate, next_line, level, True)
            if text.startswith(innermost):
                closing = text[len(innermost) : len(innermost) + 2] == b"--"
                return _Delimiter(candidate, next_line, len(stack) - 1, closing)
            pos = candidate
            candidate = -1

    def _find_blank_line(self, start: int) -> tuple[int, int]:
        """(start, end) of the first empty line after `start`, or (-1, -1). Parts are parsed
        in order, so a previous search result is reused: the total work stays linear."""
        searched_from, found_start, found_end = self._blank
        if searched_from <= start and (found_start < 0 or found_start >= start):
            return found_start, found_end
        match = _BLANK_LINE.search(self.raw, start)
        self._blank = (start, -1, -1) if match is None else (start, match.start(), match.end())
        return self._blank[1], self._blank[2]

    def end_before(self, delimiter: _Delimiter | None, floor: int) -> int:
        """Where content ends before a delimiter: its preceding line break belongs to it
        (RFC 2046 5.1.1)."""
        if delimiter is None:
            return len(self.raw)
        end = delimiter.line_start
        if end > floor and self.raw[end - 1 : end] == b"\n":
            end -= 1
            if end > floor and self.raw[end - 1 : end] == b"\r":
                end -= 1
        return max(end, floor)

    def parse_entity(
        self,
        start: int,
        depth: int,
        default_type: tuple[str, str],
        stack: tuple[bytes, ...],
    ) -> tuple[MimePart, _Delimiter | None]:
        """Parse the entity at `start`; return it and the delimiter that ended it (None: EOF)."""
        raw = self.raw
        self.part_count += 1
        body_start, early = self._header_bounds(start, stack)
        fields = split_header_fields(raw[start:body_start])
        part = _part_from_fields(fields, start, body_start, default_type)
        if early is not None:
            part.body_end = body_start
            _finish_leaf(part, raw)
            return part, early

        kind = part.type.lower()
        subtype = part.subtype.lower()
        boundary = _boundary(part) if kind == "multipart" else None
        is_message = kind == "message" and subtype in ("rfc822", "global")
        if (boundary is not None or is_message) and (
            depth >= MAX_DEPTH or self.part_count >= MAX_PARTS
        ):
            self.truncated = True
            part.type, part.subtype = _OPAQUE_TYPE
            boundary, is_message = None, False
        if is_message and (part.encoding or "").strip().lower() not in _IDENTITY_ENCODINGS:
            # An encoded message/rfc822 (forbidden by RFC 2046 5.2.1) has no byte offsets
            # to give: keep it as an opaque leaf.
            part.type, part.subtype = _OPAQUE_TYPE
            is_message = False

        if boundary is not None:
            return self._parse_multipart(part, boundary, depth, stack)
        if is_message:
            inner, delimiter = self.parse_entity(body_start, depth + 1, ("text", "plain"), stack)
            part.children = [inner]
            part.envelope = build_envelope(split_header_fields(raw[body_start : inner.body_start]))
            part.body_end = inner.body_end
            part.lines = raw.count(b"\n", body_start, part.body_end)
            return part, delimiter
        delimiter = self.find_delimiter(body_start, stack)
        part.body_end = self.end_before(delimiter, body_start)
        _finish_leaf(part, raw)
        return part, delimiter

    def _header_bounds(self, start: int, stack: tuple[bytes, ...]) -> tuple[int, _Delimiter | None]:
        """The body start (just after the blank line), and a delimiter if one comes first."""
        raw = self.raw
        if raw.startswith(b"\n", start):
            return start + 1, None
        if raw.startswith(b"\r\n", start):
            return start + 2, None
        _, blank_end = self._find_blank_line(start)
        header_end = len(raw) if blank_end < 0 else blank_end
        delimiter = self.find_delimiter(start, stack, header_end)
        if delimiter is not None:
            return self.end_before(delimiter, start), delimiter
        return header_end, None

    def _parse_multipart(
        self, part: MimePart, boundary: bytes, depth: int, stack: tuple[bytes, ...]
    ) -> tuple[MimePart, _Delimiter | None]:
        own_stack = (*stack, boundary)
        own_level = len(stack)
        child_default = (
            ("message", "rfc822") if part.subtype.lower() == "digest" else ("text", "plain")
        )
        delimiter = self.find_delimiter(part.body_start, own_stack)  # skips the preamble
        while delimiter is not None and delimiter.level == own_level and not delimiter.closing:
            if self.part_count >= MAX_PARTS:
                self.truncated = True
                delimiter = self.find_delimiter(delimiter.next_line, own_stack)
                continue
            child, delimiter = self.parse_entity(
                delimiter.next_line, depth + 1, child_default, own_stack
            )
            part.children.append(child)
        if delimiter is not None and delimiter.level == own_level:
            # The close delimiter: the epilogue runs to an enclosing boundary or the end.
            delimiter = self.find_delimiter(delimiter.next_line, stack)
        part.body_end = self.end_before(delimiter, part.body_start)
        return part, delimiter


def _boundary(part: MimePart) -> bytes | None:
    for name, value in part.params:
        if name.lower() == "boundary":
            return _to_bytes(value) if value else None
    # RFC 2231 boundary*0= continuations join to "boundary" when none is extended.
    decoded = part.param("boundary")
    return _to_bytes(decoded) if decoded else None


def _part_from_fields(
    fields: list[tuple[str, str]], start: int, body_start: int, default_type: tuple[str, str]
) -> MimePart:
    part = MimePart(header_start=start, body_start=body_start, body_end=body_start)
    ctype = _parse_content_type(_first(fields, "content-type"))
    if ctype is None:
        part.type, part.subtype = default_type
    else:
        part.type, part.subtype, part.params = ctype
        if part.type.lower() == "multipart" and not any(
            name.lower() in ("boundary", "boundary*") for name, _ in part.params
        ):
            # No boundary: not a usable multipart (RFC 2046 5.1.1 makes it mandatory).
            part.type, part.subtype, part.params = "text", "plain", []
    part.content_id = _clean(_first(fields, "content-id"))
    part.description = _clean(_first(fields, "content-description"))
    part.encoding = _clean(_first(fields, "content-transfer-encoding"))
    part.md5 = _clean(_first(fields, "content-md5"))
    part.disposition, part.disposition_params = _parse_disposition(
        _first(fields, "content-disposition")
    )
    part.language = _parse_language(_first(fields, "content-language"))
    part.location = _clean(_first(fields, "content-location"))
    return part


def _finish_leaf(part: MimePart, raw: bytes) -> None:
    if part.type.lower() in ("text", "message") and part.lines is None:
        part.lines = raw.count(b"\n", part.body_start, part.body_end)


def summarize_message(raw: bytes) -> MessageSummary:
    """Parse a message once into the summary stored with it. Never raises on bad input."""
    parser = _StructureParser(raw)
    root, _ = parser.parse_entity(0, 0, ("text", "plain"), ())
    envelope = build_envelope(split_header_fields(raw[: root.body_start]))
    return MessageSummary(
        size=len(raw),
        envelope=envelope,
        root=root,
        search_headers=build_search_headers(envelope),
        part_count=parser.part_count,
        truncated=parser.truncated,
    )


# --- text for the search index ------------------------------------------------------------------


def _lenient_base64(data: bytes) -> bytes:
    cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
    cleaned += b"=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned)
    except (binascii.Error, ValueError):
        return b""


def decode_transfer_encoding(data: bytes, encoding: str | None) -> bytes:
    """Undo base64 or quoted-printable (RFC 2045 6); other encodings are identity."""
    name = (encoding or "").strip().lower()
    if name == "base64":
        return _lenient_base64(data)
    if name == "quoted-printable":
        return decode_quoted_printable(data)
    return data


KNOWN_TRANSFER_ENCODINGS = frozenset({"", "7bit", "8bit", "binary", "base64", "quoted-printable"})
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_quoted_printable(data: bytes) -> bytes:
    """RFC 2045 6.7: trailing whitespace of each encoded line is deleted (rule 3: it was added
    by transport), "=" at a line's end (after that) is a soft break, "=XX" is an octet. Line
    ends come out as CRLF. A "=" not followed by two hex digits is kept (rule 4's robustness).
    ``binascii.a2b_qp`` keeps trailing whitespace and treats "= " + whitespace as literal text.
    """
    out = bytearray()
    lines = data.split(b"\n")
    last = len(lines) - 1
    for index, line in enumerate(lines):
        line = line.rstrip(b" \t\r")
        soft = line.endswith(b"=")
        if soft:
            line = line[:-1]
        out += _QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), line)
        if not soft and index < last:
            out += b"\r\n"
    return bytes(out)


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style"})
    _BLOCK = frozenset(
        {"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "table"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML document (no scripts or styles), entities resolved."""
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is forgiving, but hostile input must not break indexing
        pass
    text = "".join(parser.chunks)
    return re.sub(r"[ \t\r\f\v]*\n[\s]*", "\n", re.sub(r"[ \t\f\v]+", " ", text)).strip()


def text_for_search(raw: bytes, summary: MessageSummary) -> str:
    """Decoded text of every text/plain and text/html part (HTML reduced to text)."""
    texts: list[str] = []
    for part in summary.root.walk():
        if part.children or part.type.lower() != "text":
            continue
        subtype = part.subtype.lower()
        if subtype not in ("plain", "html"):
            continue
        data = decode_transfer_encoding(raw[part.body_start : part.body_end], part.encoding)
        text = decode_charset(data, part.param("charset"))
        texts.append(html_to_text(text) if subtype == "html" else text)
    return "\n".join(texts)
