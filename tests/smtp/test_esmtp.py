"""Pure ESMTP argument parsing and enhanced status codes, hostile input included."""

from __future__ import annotations

import pytest

from mailserver.smtp.esmtp import (
    PARAM_SYNTAX,
    PARAM_UNKNOWN,
    TOO_BIG,
    MailParams,
    ParamError,
    RcptParams,
    decode_xtext,
    encode_xtext,
    parse_mail_params,
    parse_rcpt_params,
    split_path,
    with_enhanced_code,
)
from mailserver.smtp.submission_headers import complete_headers, from_addresses, header_section


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("<a@b.c>", ("<a@b.c>", [])),
        (" <a@b.c> SIZE=1  BODY=8BITMIME", ("<a@b.c>", ["SIZE=1", "BODY=8BITMIME"])),
        ('<"x> y"@b.c> RET=HDRS', ('<"x> y"@b.c>', ["RET=HDRS"])),
        ('<"a\\"> b"@c.d>', ('<"a\\"> b"@c.d>', [])),
        ("a@b.c SIZE=1", ("a@b.c", ["SIZE=1"])),
        ("<unterminated", ("<unterminated", [])),
    ],
)
def test_split_path(argument: str, expected: tuple[str, list[str]]) -> None:
    assert split_path(argument) == expected


def test_split_path_needs_a_space_after_the_path() -> None:
    with pytest.raises(ParamError) as error:
        split_path("<a@b.c>SIZE=1")
    assert error.value.reply == PARAM_SYNTAX


def test_mail_params() -> None:
    assert parse_mail_params(
        ["size=10", "body=8bitmime", "SMTPUTF8", "RET=hdrs", "ENVID=QQ+2B1", "AUTH=<>"],
        100,
        True,
    ) == MailParams(size=10, body="8BITMIME", smtputf8=True, ret="HDRS", envid="QQ+2B1")
    for words, reply in [
        (["SIZE=101"], TOO_BIG),
        (["SIZE=x"], PARAM_SYNTAX),
        (["SIZE=" + "9" * 30], PARAM_SYNTAX),
        (["SIZE"], PARAM_SYNTAX),
        (["BODY=BINARYMIME"], PARAM_SYNTAX),
        (["SMTPUTF8=1"], PARAM_SYNTAX),
        (["RET=ALL"], PARAM_SYNTAX),
        (["ENVID=" + "a" * 101], PARAM_SYNTAX),
        (["ENVID=a+zz"], PARAM_SYNTAX),
        (["SIZE=1", "size=2"], PARAM_SYNTAX),
        (["-X=1"], PARAM_SYNTAX),
        (["X=a=b"], PARAM_SYNTAX),
        (["X="], PARAM_SYNTAX),
        (["XFORWARD=1"], PARAM_UNKNOWN),
    ]:
        with pytest.raises(ParamError) as error:
            parse_mail_params(words, 100, True)
        assert error.value.reply == reply, words
    with pytest.raises(ParamError):
        parse_mail_params(["SMTPUTF8"], 100, smtputf8_enabled=False)


def test_rcpt_params() -> None:
    assert parse_rcpt_params(["NOTIFY=failure,DELAY", "ORCPT=rfc822;a+40b"]) == RcptParams(
        notify=("FAILURE", "DELAY"), orcpt="rfc822;a+40b"
    )
    assert parse_rcpt_params(["NOTIFY=NEVER"]).notify == ("NEVER",)
    for words in (
        ["NOTIFY=NEVER,SUCCESS"],
        ["NOTIFY=SUCCESS,SUCCESS"],
        ["NOTIFY=SOMETIMES"],
        ["ORCPT=rfc822"],
        ["ORCPT=;x"],
        ["ORCPT=rfc822;" + "a" * 600],
    ):
        with pytest.raises(ParamError):
            parse_rcpt_params(words)


def test_xtext_round_trip() -> None:
    assert decode_xtext("a+2Bb+3Dc") == "a+b=c"
    assert encode_xtext("thành+x=y") == "th+C3+A0nh+2Bx+3Dy"
    assert decode_xtext(encode_xtext("Nguyễn <a@b>")) == "Nguyễn <a@b>"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("250 OK", "250 2.0.0 OK"),
        ("503 Error: need MAIL command", "503 5.5.1 Error: need MAIL command"),
        ("552 Error: Too much mail data", "552 5.3.4 Error: Too much mail data"),
        ("550 5.1.1 User unknown", "550 5.1.1 User unknown"),
        ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
        ("250-PIPELINING", "250-PIPELINING"),
        ("221", "221"),
        ("599 odd", "599 5.0.0 odd"),
        ("x", "x"),
    ],
)
def test_enhanced_codes(reply: str, expected: str) -> None:
    assert with_enhanced_code(reply) == expected


def test_submission_headers() -> None:
    raw = (
        b"From: =?utf-8?q?Nguy=E1=BB=85n?= <An@Sotest.gov.vn>, b@c.d\r\nTo: x\r\n\r\nFrom: e@f\r\n"
    )
    assert from_addresses(raw) == ["an@sotest.gov.vn", "b@c.d"]
    assert from_addresses(b"To: x\r\n\r\nFrom: a@b\r\n") is None
    assert header_section(b"\r\nbody") == b""
    from datetime import UTC, datetime

    completed = complete_headers(b"Subject: s\r\n\r\nb", datetime(2026, 3, 2, tzinfo=UTC), "id@h")
    assert completed == (
        b"Date: Mon, 02 Mar 2026 00:00:00 +0000\r\nMessage-ID: <id@h>\r\nSubject: s\r\n\r\nb"
    )
