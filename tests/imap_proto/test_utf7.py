"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3)."""

from __future__ import annotations

import pytest

from mailserver.imap.utf7 import decode_mailbox_name, encode_mailbox_name

ROUND_TRIPS = [
    ("INBOX", "INBOX"),
    ("", ""),
    # RFC 3501 section 5.1.3 example: ~peter/mail/台北/日本語
    ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("a&b", "a&-b"),
    ("&", "&-"),
    ("&&", "&-&-"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("Hộp thư đến", "H&Htk-p th&AbA- &AREevw-n"),
    ("Thư đã gửi", "Th&AbA- &AREA4w- g&Hu0-i"),  # cross-checked with imapclient.imap_utf7
    ("😀", "&2D3eAA-"),  # outside the BMP: a UTF-16 surrogate pair
    ("tab\there", "tab&AAk-here"),  # control characters are encoded too
    ("~", "~"),
]


@pytest.mark.parametrize(("name", "wire"), ROUND_TRIPS)
def test_encode(name: str, wire: str) -> None:
    assert encode_mailbox_name(name) == wire


@pytest.mark.parametrize(("name", "wire"), ROUND_TRIPS)
def test_decode(name: str, wire: str) -> None:
    assert decode_mailbox_name(wire) == name


INVALID = [
    "&",  # unterminated
    "&U,BTFw",  # unterminated run
    "&U,BTF-",  # 5 base64 chars: not whole UTF-16 units / non-zero padding bits
    "&AGE-",  # encodes printable ASCII "a"
    "&ACY-",  # encodes "&" instead of "&-"
    "&U,BTFw-&ZeVnLIqe-",  # two adjacent runs: the canonical form is one run
    "&U/BTFw-",  # standard base64 "/" instead of ","
    "&U,BTFw=-",  # padding is not used
    "&2D0-",  # lone high surrogate
    "&3gA-",  # lone low surrogate
    "caf\u00e9",  # 8-bit character sent raw
    "a\x00b",  # NUL
    "a\rb",  # CR
    "&AAk",  # unterminated
    "&!!!-",  # not base64
]


@pytest.mark.parametrize("wire", INVALID)
def test_decode_rejects_non_canonical(wire: str) -> None:
    with pytest.raises(ValueError):
        decode_mailbox_name(wire)


def test_encode_rejects_lone_surrogate() -> None:
    with pytest.raises(ValueError):
        encode_mailbox_name("bad\ud800")


def test_every_bmp_sample_round_trips() -> None:
    sample = "".join(chr(code) for code in range(0x00, 0x3000, 7) if not 0xD800 <= code < 0xE000)
    assert decode_mailbox_name(encode_mailbox_name(sample)) == sample
    assert encode_mailbox_name(sample).isascii()


def test_split_run_is_rejected() -> None:
    # "đã" written as two runs decodes to the right text but is not the canonical form.
    with pytest.raises(ValueError):
        decode_mailbox_name("Th&AbA- &ARE-&AOM- g&Hu0-i")
