"""Response encoding: tokens and status lines (RFC 9051 sections 4 and 7)."""

from __future__ import annotations

import pytest

from mailserver.imap import response as r
from mailserver.imap.response import ResponseCode


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello", b'"hello"'),
        ("", b'""'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        ("line\r\nbreak", b"{11}\r\nline\r\nbreak"),
        ("lf\nonly", b"{7}\r\nlf\nonly"),
        ("caf\u00e9", b"{5}\r\ncaf\xc3\xa9"),  # 8-bit forces a literal without UTF8=ACCEPT
        (b"nul\x00", b"{4}\r\nnul\x80"),  # NUL cannot be in a literal: 0x80 as Dovecot
        ("x" * 1025, b"{1025}\r\n" + b"x" * 1025),  # long values go as literals
    ],
)
def test_string(value: str | bytes, expected: bytes) -> None:
    assert r.string(value) == expected


def test_string_utf8_accept_quotes_valid_utf8_only() -> None:
    assert r.string("Hộp thư", utf8=True) == '"Hộp thư"'.encode()
    assert r.string(b"\xff\xfe", utf8=True) == b"{2}\r\n\xff\xfe"
    assert r.string("a\r\nb", utf8=True) == b"{4}\r\na\r\nb"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("INBOX", b"INBOX"),
        ("Archive/2024", b"Archive/2024"),
        ("a]b", b"a]b"),  # resp-specials are ASTRING-CHARs
        ("two words", b'"two words"'),
        ("", b'""'),
        ("NIL", b'"NIL"'),
        ("nil", b'"nil"'),
        ("a(b", b'"a(b"'),
        ("wild*", b'"wild*"'),
        ("pct%", b'"pct%"'),
        ("br{ace", b'"br{ace"'),
        ('q"uote', b'"q\\"uote"'),
        ("H&Htk-p", b"H&Htk-p"),
    ],
)
def test_astring(value: str, expected: bytes) -> None:
    assert r.astring(value) == expected


def test_nstring() -> None:
    assert r.nstring(None) == b"NIL"
    assert r.nstring("NIL") == b'"NIL"'
    assert r.nstring("") == b'""'


def test_quoted_refuses_line_breaks() -> None:
    with pytest.raises(ValueError):
        r.quoted("a\rb")


def test_literal_and_literal8() -> None:
    assert r.literal(b"abc") == b"{3}\r\nabc"
    assert r.literal(b"\x00\x01", binary=True) == b"~{2}\r\n\x00\x01"
    assert r.literal(b"") == b"{0}\r\n"
    assert r.literal(b"a\x00b\x00") == b"{4}\r\na\x80b\x80"


def test_paren_list_and_flags() -> None:
    assert r.paren_list([b"1", b"2"]) == b"(1 2)"
    assert r.paren_list([]) == b"()"
    assert r.flag_list(["\\Seen", "\\Deleted", "$Forwarded"]) == b"(\\Seen \\Deleted $Forwarded)"
    assert r.flag_list([]) == b"()"
    assert r.flag_list(["\\*"]) == b"(\\*)"


@pytest.mark.parametrize("flag", ["two words", "a(b", "", "\\", "caf\u00e9", "x\r\n* BYE"])
def test_flag_list_rejects_invalid_flags(flag: str) -> None:
    with pytest.raises(ValueError):
        r.flag_list([flag])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1], b"1"),
        ([3, 1, 2], b"1:3"),
        ([1, 2, 3, 5, 7, 8], b"1:3,5,7:8"),
        ([3955, 3955], b"3955"),
        ([4294967295, 1], b"1,4294967295"),
    ],
)
def test_sequence_set(values: list[int], expected: bytes) -> None:
    assert r.sequence_set(values) == expected


@pytest.mark.parametrize("values", [[], [0], [-1]])
def test_sequence_set_rejects(values: list[int]) -> None:
    with pytest.raises(ValueError):
        r.sequence_set(values)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (r.tagged_ok("A003", "STORE completed"), b"A003 OK STORE completed\r\n"),
        (
            r.tagged_ok("A003", "APPEND completed", ResponseCode("APPENDUID", (38505, 3955))),
            b"A003 OK [APPENDUID 38505 3955] APPEND completed\r\n",
        ),
        (
            r.tagged_ok(
                "A004", "Done", ResponseCode("COPYUID", (38505, b"304,319:320", b"3956:3958"))
            ),
            b"A004 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
        ),
        (
            r.tagged_no("A1", "Message too big", ResponseCode("TOOBIG")),
            b"A1 NO [TOOBIG] Message too big\r\n",
        ),
        (
            r.tagged_no("A1", "Mailbox exists", ResponseCode("ALREADYEXISTS")),
            b"A1 NO [ALREADYEXISTS] Mailbox exists\r\n",
        ),
        (r.tagged_bad("A1", "Unknown command"), b"A1 BAD Unknown command\r\n"),
        (
            r.untagged_ok("Predicted next UID", ResponseCode("UIDNEXT", (5,))),
            b"* OK [UIDNEXT 5] Predicted next UID\r\n",
        ),
        (
            r.untagged_ok(
                "Flags permitted", ResponseCode("PERMANENTFLAGS", (r.flag_list(["\\Seen", "\\*"]),))
            ),
            b"* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted\r\n",
        ),
        (r.untagged_no("Disk almost full"), b"* NO Disk almost full\r\n"),
        (r.untagged_bad("Empty command line"), b"* BAD Empty command line\r\n"),
        (r.bye("Logging out"), b"* BYE Logging out\r\n"),
        (r.preauth("Welcome"), b"* PREAUTH Welcome\r\n"),
        (r.tagged_ok("A1", "", ResponseCode("READ-WRITE")), b"A1 OK [READ-WRITE]\r\n"),
        (r.tagged_ok("A1", ""), b"A1 OK done\r\n"),
        (r.continuation(), b"+ Ready\r\n"),
        (r.continuation("Idling"), b"+ Idling\r\n"),
        (r.continuation_data(b""), b"+ \r\n"),
        (r.continuation_data(b"\x00ab"), b"+ AGFi\r\n"),
        (r.untagged(b"3", b"EXISTS"), b"* 3 EXISTS\r\n"),
        (
            r.capability_data(["IMAP4rev1", "IMAP4rev2", "AUTH=PLAIN", "LITERAL+"]),
            b"* CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=PLAIN LITERAL+\r\n",
        ),
    ],
)
def test_status_lines(line: bytes, expected: bytes) -> None:
    assert line == expected


def test_text_cannot_inject_a_second_line() -> None:
    line = r.tagged_no("A1", "bad name\r\nA2 OK forged\x00")
    assert line == b"A1 NO bad name  A2 OK forged \r\n"
    assert line.count(b"\r\n") == 1
    assert r.continuation("x\r\n* BYE") == b"+ x  * BYE\r\n"


def test_response_code_string_argument_cannot_close_the_bracket() -> None:
    assert ResponseCode("BADCHARSET", ("UTF-8]x",)).encode() == b"[BADCHARSET UTF-8x]"


@pytest.mark.parametrize("tag", ["", "+", "a b", "a(", "A*", "t\r\n"])
def test_invalid_tags_are_refused(tag: str) -> None:
    with pytest.raises(ValueError):
        r.tagged_ok(tag, "x")


def test_invalid_code_name_is_refused() -> None:
    with pytest.raises(ValueError):
        ResponseCode("BAD CODE").encode()
    with pytest.raises(TypeError):
        ResponseCode("X", (True,)).encode()


def test_number() -> None:
    assert r.number(0) == b"0"
    assert r.number(2**63 - 1) == b"9223372036854775807"
    with pytest.raises(ValueError):
        r.number(-1)


def test_status_response_with_and_without_tag() -> None:
    code = ResponseCode("TOOBIG")
    assert (
        r.status_response("A1", r.StatusKind.NO, "Too big", code) == b"A1 NO [TOOBIG] Too big\r\n"
    )
    assert r.status_response(None, r.StatusKind.BAD, "Invalid tag") == b"* BAD Invalid tag\r\n"
