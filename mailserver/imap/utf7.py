"""Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3).

Pure string functions. The decoder is strict: it accepts only the one canonical encoding of a
name, so that every stored name has exactly one wire form and the wire form maps back to it.
Clients that enabled UTF8=ACCEPT (RFC 6855) send UTF-8 names and skip this module.
"""

from __future__ import annotations

import base64
import binascii

_SHIFT = "&"
_UNSHIFT = "-"


def _is_direct(char: str) -> bool:
    """Return whether a character stands for itself (printable US-ASCII, RFC 3501 5.1.3)."""
    return 0x20 <= ord(char) <= 0x7E


def _encode_run(run: str) -> str:
    try:
        utf16 = run.encode("utf-16-be")
    except UnicodeEncodeError as exc:  # lone surrogates in the str
        raise ValueError(f"cannot encode mailbox name: {exc}") from exc
    encoded = base64.b64encode(utf16).decode("ascii").rstrip("=")
    return _SHIFT + encoded.replace("/", ",") + _UNSHIFT


def encode_mailbox_name(name: str) -> str:
    """Encode a Unicode mailbox name into modified UTF-7.

    "&" becomes "&-"; other printable ASCII stays; every other run of characters becomes
    "&" + modified base64 of its UTF-16BE form + "-". Raises ValueError for lone surrogates.
    """
    out: list[str] = []
    run: list[str] = []
    for char in name:
        if _is_direct(char):
            if run:
                out.append(_encode_run("".join(run)))
                run.clear()
            out.append("&-" if char == _SHIFT else char)
        else:
            run.append(char)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def _decode_run(encoded: str) -> str:
    if not encoded or not set(encoded) <= _B64_CHARS:
        raise ValueError(f"invalid modified base64 in mailbox name: {encoded!r}")
    standard = encoded.replace(",", "/")
    padded = standard + "=" * (-len(standard) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid modified base64 in mailbox name: {encoded!r}") from exc
    if len(raw) % 2:
        raise ValueError("modified UTF-7 run does not hold whole UTF-16 units")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid UTF-16 in mailbox name: {exc}") from exc
    if any(_is_direct(char) for char in text):
        # RFC 3501 5.1.3: modified BASE64 MUST NOT be used to represent any printing
        # US-ASCII character which can represent itself.
        raise ValueError("printable ASCII must not be base64-encoded in a mailbox name")
    return text


def decode_mailbox_name(encoded: str) -> str:
    """Decode a modified UTF-7 mailbox name into Unicode.

    Raises ValueError for anything but the canonical encoding: characters outside printable
    ASCII, an unterminated "&" run, invalid base64, non-zero padding bits, broken UTF-16,
    encoded printable ASCII, or two adjacent encoded runs.
    """
    out: list[str] = []
    pos = 0
    length = len(encoded)
    while pos < length:
        char = encoded[pos]
        if not _is_direct(char):
            raise ValueError(f"character {char!r} is not allowed in a modified UTF-7 name")
        if char != _SHIFT:
            out.append(char)
            pos += 1
            continue
        end = encoded.find(_UNSHIFT, pos + 1)
        if end < 0:
            raise ValueError("unterminated '&' run in mailbox name")
        if end == pos + 1:
            out.append(_SHIFT)
        else:
            out.append(_decode_run(encoded[pos + 1 : end]))
        pos = end + 1
    decoded = "".join(out)
    # Catches what the piecewise checks above cannot see: non-zero padding bits and two
    # adjacent runs that the encoder would have written as one.
    if encode_mailbox_name(decoded) != encoded:
        raise ValueError(f"mailbox name {encoded!r} is not in canonical modified UTF-7")
    return decoded
