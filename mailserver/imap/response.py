"""IMAP response encoding (RFC 3501 section 7, RFC 9051 section 7): bytes out, nothing else.

Token encoders (`quoted`, `literal`, `string`, `astring`, `nstring`, `paren_list`,
`flag_list`, `sequence_set`) return the bytes of one token. Status builders (`tagged_ok`,
`untagged_no`, `bye`, `continuation`...) return whole response lines ending in CRLF. Free text
is cleaned of CR, LF and NUL so that nothing a client or a storage error message contains can
inject a second response line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

CRLF = b"\r\n"
NIL = b"NIL"

# RFC 9051 section 9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
# quoted-specials / resp-specials. ASTRING-CHAR adds resp-specials ("]") back.
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x00, 0x20)) | {0x7F}
_ASTRING_SPECIALS = _ATOM_SPECIALS - {ord("]")}

# Quoted strings longer than this are sent as literals: some clients have small line buffers.
MAX_QUOTED_LENGTH = 1024
# Bytes a quoted string can never hold (searched in C: ENVELOPE quotes every header value).
_UNQUOTABLE = re.compile(b"[\x00\n\r]")


class StatusKind(StrEnum):
    """Status response kinds (RFC 9051 section 7.1)."""

    OK = "OK"
    NO = "NO"
    BAD = "BAD"
    PREAUTH = "PREAUTH"
    BYE = "BYE"


@dataclass(frozen=True)
class ResponseCode:
    """A response code: `[NAME arg arg]`, e.g. ResponseCode("APPENDUID", (38505, 3955)).

    Arguments are written as given: ints in decimal, bytes verbatim (already-encoded tokens such
    as a paren_list), str verbatim after a check that it holds no "]" or line break.
    """

    name: str
    args: tuple[int | str | bytes, ...] = ()

    def encode(self) -> bytes:
        """Return the bracketed code, e.g. b"[UIDNEXT 5]"."""
        parts = [_clean_atom(self.name)]
        for arg in self.args:
            if isinstance(arg, bool):
                raise TypeError("response code arguments must not be bool")
            if isinstance(arg, int):
                parts.append(str(arg).encode("ascii"))
            elif isinstance(arg, bytes):
                parts.append(_clean_text(arg))
            else:
                parts.append(_clean_text(arg.encode("utf-8")).replace(b"]", b""))
        return b"[" + b" ".join(parts) + b"]"


def _clean_atom(name: str) -> bytes:
    raw = name.encode("ascii")
    if not raw or any(byte in _ATOM_SPECIALS or byte > 0x7E for byte in raw):
        raise ValueError(f"invalid response code name {name!r}")
    return raw


def _clean_text(text: bytes) -> bytes:
    """Replace CR, LF and NUL so free text stays on its response line."""
    return text.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\x00", b" ")


# --- tokens ---------------------------------------------------------------------------------


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def number(value: int) -> bytes:
    """Encode a non-negative number (RFC 9051 `number`/`number64`)."""
    if isinstance(value, bool) or value < 0:
        raise ValueError(f"IMAP numbers are non-negative integers, got {value!r}")
    return str(value).encode("ascii")


def quoted(value: str | bytes) -> bytes:
    """Encode as a quoted string, escaping `"` and backslash. Raises ValueError if it can't be.

    CR, LF and NUL can never be quoted; use `string` to choose a literal automatically.
    """
    raw = _as_bytes(value)
    if _UNQUOTABLE.search(raw):
        raise ValueError("CR, LF and NUL cannot appear in a quoted string")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(value: str | bytes, *, binary: bool = False) -> bytes:
    """Encode as a synchronising literal `{n}CRLF<data>` or literal8 `~{n}CRLF<data>`.

    A plain literal cannot carry NUL (RFC 9051 section 9: literal = ... *CHAR8), so NUL goes
    out as 0x80, the same length, as Dovecot sends it; literal8 (BINARY) carries the real bytes.
    """
    raw = _as_bytes(value)
    if binary:
        return b"~{" + number(len(raw)) + b"}" + CRLF + raw
    return b"{" + number(len(raw)) + b"}" + CRLF + raw.replace(b"\x00", b"\x80")


def _can_quote(raw: bytes, utf8: bool) -> bool:
    if len(raw) > MAX_QUOTED_LENGTH:
        return False
    if _UNQUOTABLE.search(raw):
        return False
    if not raw.isascii():
        # RFC 6855 section 3: once UTF8=ACCEPT is enabled, quoted strings may carry UTF-8.
        if not utf8:
            return False
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def string(value: str | bytes, *, utf8: bool = False) -> bytes:
    """Encode an IMAP `string`: quoted when possible, a literal for CR/LF/NUL, long or 8-bit data.

    utf8=True (the client enabled UTF8=ACCEPT) allows valid UTF-8 inside quotes.
    """
    raw = _as_bytes(value)
    return quoted(raw) if _can_quote(raw, utf8) else literal(raw)


def astring(value: str | bytes, *, utf8: bool = False) -> bytes:
    """Encode an `astring`: a bare atom when every byte is an ASTRING-CHAR, else a string.

    "NIL" is quoted so a client reading an nstring position never mistakes it for NIL.
    """
    raw = _as_bytes(value)
    if (
        raw
        and raw.upper() != NIL
        and all(byte not in _ASTRING_SPECIALS and byte <= 0x7E for byte in raw)
    ):
        return raw
    return string(raw, utf8=utf8)


def nstring(value: str | bytes | None, *, utf8: bool = False) -> bytes:
    """Encode an `nstring`: NIL for None, else a string."""
    return NIL if value is None else string(value, utf8=utf8)


def paren_list(items: Iterable[bytes]) -> bytes:
    """Join already-encoded tokens with spaces inside parentheses: b"(a b c)"."""
    return b"(" + b" ".join(items) + b")"


def flag_list(flags: Iterable[str]) -> bytes:
    r"""Encode a flag list, e.g. ("\\Seen", "$Forwarded") -> b"(\\Seen $Forwarded)".

    Flags are atoms (optionally with a leading backslash); anything else is a ValueError,
    because a stored keyword with a space would otherwise corrupt the response.
    """
    encoded: list[bytes] = []
    for flag in flags:
        raw = flag.encode("ascii", errors="strict")
        body = raw[1:] if raw.startswith(b"\\") else raw
        if body == b"*" and raw == b"\\*":
            encoded.append(raw)
            continue
        if not body or any(byte in _ATOM_SPECIALS or byte > 0x7E for byte in body):
            raise ValueError(f"invalid flag {flag!r}")
        encoded.append(raw)
    return paren_list(encoded)


def sequence_set(values: Iterable[int]) -> bytes:
    """Encode numbers as a compact sequence set: [1, 2, 3, 5] -> b"1:3,5" (sorted, merged).

    Used for COPYUID/APPENDUID UID sets and VANISHED. Raises ValueError if empty.
    """
    ordered = sorted(set(values))
    if not ordered:
        raise ValueError("a sequence set cannot be empty")
    if ordered[0] < 1:
        raise ValueError("sequence set members are non-zero numbers")
    parts: list[bytes] = []
    start = prev = ordered[0]
    for value in ordered[1:]:
        if value == prev + 1:
            prev = value
            continue
        parts.append(_range(start, prev))
        start = prev = value
    parts.append(_range(start, prev))
    return b",".join(parts)


def _range(start: int, end: int) -> bytes:
    return number(start) if start == end else number(start) + b":" + number(end)


# --- whole response lines -------------------------------------------------------------------


def _status_line(prefix: bytes, status: StatusKind, text: str, code: ResponseCode | None) -> bytes:
    parts = [prefix, status.value.encode("ascii")]
    if code is not None:
        parts.append(code.encode())
    cleaned = _clean_text(text.encode("utf-8"))
    if cleaned:
        parts.append(cleaned)
    elif code is None:
        # resp-text = ["[" resp-text-code "]" SP] text and text = 1*TEXT-CHAR: never empty.
        parts.append(b"done")
    return b" ".join(parts) + CRLF


def _tag_bytes(tag: str) -> bytes:
    raw = tag.encode("ascii")
    if not raw or raw == b"+" or any(byte in _ASTRING_SPECIALS or byte > 0x7E for byte in raw):
        raise ValueError(f"invalid tag {tag!r}")
    return raw


def tagged(tag: str, status: StatusKind, text: str, code: ResponseCode | None = None) -> bytes:
    """`TAG OK|NO|BAD [CODE] text` CRLF."""
    if status not in (StatusKind.OK, StatusKind.NO, StatusKind.BAD):
        raise ValueError(f"{status} cannot be tagged")
    return _status_line(_tag_bytes(tag), status, text, code)


def tagged_ok(tag: str, text: str, code: ResponseCode | None = None) -> bytes:
    """`TAG OK [CODE] text` CRLF: the command completed."""
    return tagged(tag, StatusKind.OK, text, code)


def tagged_no(tag: str, text: str, code: ResponseCode | None = None) -> bytes:
    """`TAG NO [CODE] text` CRLF: the command failed."""
    return tagged(tag, StatusKind.NO, text, code)


def tagged_bad(tag: str, text: str, code: ResponseCode | None = None) -> bytes:
    """`TAG BAD [CODE] text` CRLF: the command was not understood."""
    return tagged(tag, StatusKind.BAD, text, code)


def status_response(
    tag: str | None, status: StatusKind, text: str, code: ResponseCode | None = None
) -> bytes:
    """Tagged status when the tag is known, else untagged: for ReceiveError and ParseError.

    E.g. status_response(error.tag, error.status, error.text, code) with code built from
    error.code (`ResponseCode(error.code)` when it is not None).
    """
    if tag is None:
        return untagged_status(status, text, code)
    return tagged(tag, status, text, code)


def untagged_status(status: StatusKind, text: str, code: ResponseCode | None = None) -> bytes:
    """`* OK|NO|BAD|PREAUTH|BYE [CODE] text` CRLF."""
    return _status_line(b"*", status, text, code)


def untagged_ok(text: str, code: ResponseCode | None = None) -> bytes:
    """`* OK [CODE] text` CRLF, e.g. the greeting or `* OK [UIDNEXT 5] Predicted next UID`."""
    return untagged_status(StatusKind.OK, text, code)


def untagged_no(text: str, code: ResponseCode | None = None) -> bytes:
    """`* NO [CODE] text` CRLF: a warning."""
    return untagged_status(StatusKind.NO, text, code)


def untagged_bad(text: str, code: ResponseCode | None = None) -> bytes:
    """`* BAD [CODE] text` CRLF: a protocol error not tied to a tag."""
    return untagged_status(StatusKind.BAD, text, code)


def preauth(text: str, code: ResponseCode | None = None) -> bytes:
    """`* PREAUTH [CODE] text` CRLF greeting."""
    return untagged_status(StatusKind.PREAUTH, text, code)


def bye(text: str, code: ResponseCode | None = None) -> bytes:
    """`* BYE [CODE] text` CRLF: the server is closing the connection."""
    return untagged_status(StatusKind.BYE, text, code)


def untagged(*tokens: bytes) -> bytes:
    """`* token token ...` CRLF from already-encoded tokens, e.g. untagged(b"3", b"EXISTS")."""
    return b"* " + b" ".join(tokens) + CRLF


def continuation(text: str = "Ready") -> bytes:
    """`+ text` CRLF: asks for a synchronising literal or the next IDLE/AUTHENTICATE line."""
    cleaned = _clean_text(text.encode("utf-8"))
    return b"+ " + cleaned + CRLF


def continuation_data(data: bytes) -> bytes:
    """`+ base64` CRLF: an AUTHENTICATE challenge (RFC 9051 section 6.2.2); empty gives `+ `."""
    return b"+ " + base64.b64encode(data) + CRLF


def capability_data(capabilities: Sequence[str]) -> bytes:
    """`* CAPABILITY IMAP4rev1 ...` CRLF."""
    return untagged(b"CAPABILITY", *(_clean_atom(cap) for cap in capabilities))
