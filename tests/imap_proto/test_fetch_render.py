"""Tests for mailserver.imap.fetch_render: ENVELOPE, BODY/BODYSTRUCTURE and BODY[section].

Expected strings come from RFC 3501's own examples and from Dovecot's imaptest suite
(src/tests/fetch-body-mime, fetch-body-message-rfc822-mime, fetch-body-message-rfc822-x2,
fetch-bodystructure), with the messages written with CRLF.
"""

from __future__ import annotations

import pytest

from mailserver.imap.fetch_render import (
    find_part,
    render_bodystructure,
    render_envelope,
    section_bytes,
)
from storage.message_summary import MessageSummary, summarize_message


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def lines_of(count: int, total: int) -> str:
    """A body of exactly `count` CRLF lines and `total` octets."""
    width = total // count
    short = ["a" * (width - 2) + "\n"] * (count - 1)
    return "".join(short) + "b" * (total - width * (count - 1) - 2) + "\n"


# --- RFC 3501 examples --------------------------------------------------------------------------

RFC3501_ENVELOPE_MESSAGE = crlf(
    "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\n"
    "From: Terry Gray <gray@cac.washington.edu>\n"
    "Subject: IMAP4rev1 WG mtg summary and minutes\n"
    "To: imap@cac.washington.edu\n"
    "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\n"
    "Message-Id: <B27397-0100000@cac.washington.edu>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n\n" + lines_of(92, 3028)
)


def test_rfc3501_envelope_example() -> None:
    # RFC 3501 section 8, the FETCH 12 FULL response.
    summary = summarize_message(RFC3501_ENVELOPE_MESSAGE)
    assert render_envelope(summary) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )
    # The same response: BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)
    # (the message has no Content-Transfer-Encoding: the default is written as Dovecot does).
    assert render_bodystructure(summary, extensible=False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 3028 92)'
    )


RFC3501_MULTIPART = crlf(
    'Content-Type: MULTIPART/MIXED; BOUNDARY="b"\n\n--b\n'
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\nContent-Transfer-Encoding: 7BIT\n\n"
    + lines_of(23, 1152)
    # The line break before a delimiter belongs to the delimiter (RFC 2046 5.1.1).
    + "\n--b\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\n"
    "Content-ID: <960723163407.20117h@cac.washington.edu>\n"
    "Content-Description: Compiler diff\nContent-Transfer-Encoding: BASE64\n\n"
    + lines_of(73, 4554)
    + "\n--b--\n"
)


def test_rfc3501_body_example() -> None:
    # RFC 3501 section 7.4.2, the BODYSTRUCTURE example (in its non-extensible form).
    summary = summarize_message(RFC3501_MULTIPART)
    assert render_bodystructure(summary, extensible=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) "MIXED")'
    )
    assert render_bodystructure(summary, extensible=True) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23 NIL NIL NIL NIL)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73 '
        b'NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "b") NIL NIL NIL)'
    )


def test_dovecot_folded_boundary_bodystructure() -> None:
    # imaptest src/tests/fetch-bodystructure: the boundary is folded over two lines.
    raw = crlf(
        "From: user@domain.org\nDate: Sat, 24 Mar 2007 23:00:00 +0200\nMime-Version: 1.0\n"
        'Content-Type: multipart/MIXED; boundary="foo\n bar"\n\n--foo bar\n'
        "Content-Type: TEXT/x-MYOWN; CHARSET=us-ascii\nContent-Transfer-Encoding: 7BIT\n\n"
        "hello\n\n--foo bar--\n"
    )
    summary = summarize_message(raw)
    assert render_bodystructure(summary, extensible=False) == (
        b'(("TEXT" "x-MYOWN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1) "MIXED")'
    )
    assert render_bodystructure(summary, extensible=True) == (
        b'(("TEXT" "x-MYOWN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1 NIL NIL NIL NIL) '
        b'"MIXED" ("boundary" "foo bar") NIL NIL NIL)'
    )


def test_bodystructure_of_message_rfc822_and_extension_fields() -> None:
    raw = crlf(
        "Subject: outer\nContent-Type: multipart/mixed; boundary=x\n\n--x\n"
        "Content-Type: message/rfc822\nContent-Disposition: inline\n\n"
        "From: A <a@b.vn>\nSubject: inner\n\nhi\n--x\n"
        "Content-Type: application/pdf; name*=utf-8''V%C4%83n.pdf\n"
        'Content-Disposition: attachment; filename="a b.pdf"\n'
        "Content-Language: vi, en\nContent-Location: cid:x\nContent-MD5: abc=\n"
        "Content-Transfer-Encoding: base64\n\nAAAA\n--x--\n"
    )
    summary = summarize_message(raw)
    address = b'(("A" NIL "a" "b.vn"))'
    envelope = b'(NIL "inner" ' + b" ".join([address] * 3) + b" NIL NIL NIL NIL NIL)"
    assert render_bodystructure(summary, extensible=True) == (
        b'(("message" "rfc822" NIL NIL NIL "7bit" 38 '
        + envelope
        + b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 2 0 NIL NIL NIL NIL) 3 '
        b'NIL ("inline" NIL) NIL NIL)'
        b'("application" "pdf" ("name*" "utf-8\'\'V%C4%83n.pdf") NIL NIL "base64" 4 '
        b'"abc=" ("attachment" ("filename" "a b.pdf")) ("vi" "en") "cid:x") '
        b'"mixed" ("boundary" "x") NIL NIL NIL)'
    )
    assert render_bodystructure(summary, extensible=False) == (
        b'(("message" "rfc822" NIL NIL NIL "7bit" 38 '
        + envelope
        + b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 2 0) 3)'
        b'("application" "pdf" ("name*" "utf-8\'\'V%C4%83n.pdf") NIL NIL "base64" 4) "mixed")'
    )


def test_multipart_without_parts_renders_an_empty_text_part() -> None:
    summary = summarize_message(crlf("Content-Type: multipart/mixed; boundary=q\n\nnone\n"))
    assert render_bodystructure(summary, extensible=False) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")'
    )
    assert render_bodystructure(summary, extensible=True) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) '
        b'"mixed" ("boundary" "q") NIL NIL NIL)'
    )


def test_envelope_strings_with_8bit_quotes_and_groups() -> None:
    raw = (
        b'Subject: caf\xe9 "q" \\ x\r\nFrom: "A \\"B\\"" <a@b>\r\n'
        b"To: team: x@y;\r\nSender:\r\nIn-Reply-To: <r@x>\r\n\r\n"
    )
    summary = summarize_message(raw)
    rendered = render_envelope(summary)
    assert rendered == (
        b'(NIL {12}\r\ncaf\xe9 "q" \\ x (("A \\"B\\"" NIL "a" "b")) (("A \\"B\\"" NIL "a" "b")) '
        b'(("A \\"B\\"" NIL "a" "b")) ((NIL NIL "team" NIL)(NIL NIL "x" "y")(NIL NIL NIL NIL)) '
        b'NIL NIL "<r@x>" NIL)'
    )
    # Rendering from the stored JSON gives the same bytes.
    assert render_envelope(MessageSummary.from_json(summary.to_json())) == rendered


def test_utf8_accept_quotes_utf8_strings() -> None:
    summary = summarize_message("Subject: Văn bản\r\n\r\n".encode())
    assert render_envelope(summary, utf8=True).startswith('(NIL "Văn bản" NIL'.encode())
    assert render_envelope(summary).startswith(b"(NIL {10}\r\nV\xc4\x83n b")


# --- BODY[section] -------------------------------------------------------------------------------

ROOT_HEADER = (
    "From: user@domain.org\nDate: Sat, 24 Mar 2007 23:00:00 +0200\nMime-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="foo\n bar"\n\n'
)
ROOT_TEXT = (
    "Root MIME prologue\n\n"
    "--foo bar\nContent-Type: text/x-myown; charset=us-ascii\n\nhello\n\n"
    "--foo bar\nContent-Type: message/rfc822\n\n"
    "From: sub@domain.org\nDate: Sun, 12 Aug 2012 12:34:56 +0300\nSubject: submsg\n"
    'Content-Type: multipart/alternative; boundary="sub1"\n\nSub MIME prologue\n'
    "--sub1\nContent-Type: text/html\n\n<p>Hello world</p>\n\n"
    "--sub1\nContent-Type: text/plain\n\nHello another world\n\n"
    "--sub1--\nSub MIME epilogue\n\n--foo bar--\nRoot MIME epilogue\n"
)
FETCH_BODY_MIME = crlf(ROOT_HEADER + ROOT_TEXT)

SUBMESSAGE = (
    "From: sub@domain.org\nDate: Sun, 12 Aug 2012 12:34:56 +0300\nSubject: submsg\n"
    'Content-Type: multipart/alternative; boundary="sub1"\n\n'
)
SUBTEXT = (
    "Sub MIME prologue\n--sub1\nContent-Type: text/html\n\n<p>Hello world</p>\n\n"
    "--sub1\nContent-Type: text/plain\n\nHello another world\n\n--sub1--\nSub MIME epilogue\n"
)


@pytest.mark.parametrize(
    ("part", "specifier", "fields", "not_fields", "expected"),
    [
        ((), None, None, False, None),
        ((), "TEXT", None, False, ROOT_TEXT),
        ((), "HEADER", None, False, ROOT_HEADER),
        ((1,), None, None, False, "hello\n"),
        ((1,), "mime", None, False, "Content-Type: text/x-myown; charset=us-ascii\n\n"),
        ((2,), None, None, False, SUBMESSAGE + SUBTEXT),
        ((2,), "MIME", None, False, "Content-Type: message/rfc822\n\n"),
        ((2,), "HEADER", None, False, SUBMESSAGE),
        (
            (2,),
            "HEADER.FIELDS",
            ["from", "subject", "X-foo"],
            False,
            "From: sub@domain.org\nSubject: submsg\n\n",
        ),
        (
            (2,),
            "HEADER.FIELDS",
            ["from", "subject", "X-foo"],
            True,
            "Date: Sun, 12 Aug 2012 12:34:56 +0300\n"
            'Content-Type: multipart/alternative; boundary="sub1"\n\n',
        ),
        ((2,), "TEXT", None, False, SUBTEXT),
        ((2, 1), "MIME", None, False, "Content-Type: text/html\n\n"),
        ((2, 1), None, None, False, "<p>Hello world</p>\n"),
        ((2, 2), "mime", None, False, "Content-Type: text/plain\n\n"),
        ((2, 2), None, None, False, "Hello another world\n"),
    ],
)
def test_dovecot_fetch_body_mime(
    part: tuple[int, ...],
    specifier: str | None,
    fields: list[str] | None,
    not_fields: bool,
    expected: str | None,
) -> None:
    # imaptest src/tests/fetch-body-mime.
    summary = summarize_message(FETCH_BODY_MIME)
    want = FETCH_BODY_MIME if expected is None else crlf(expected)
    assert section_bytes(FETCH_BODY_MIME, summary, part, specifier, fields, not_fields) == want


DIGEST_IN_MESSAGE = crlf(
    "From: user@domain.org\nDate: Sat, 24 Mar 2007 23:00:00 +0200\nMime-Version: 1.0\n"
    "Content-Type: message/rfc822\n\n"
    "From: sub@domain.org\nDate: Sun, 12 Aug 2012 12:34:56 +0300\nSubject: submsg\n"
    'Content-Type: multipart/digest; boundary="foo"\n\nprologue\n\n--foo \n\n'
    "From: m1@example.com\nSubject: m1\n\nm1 body\n\n--foo \nX-Mime: m2 header\n\n"
    "From: m2@example.com\nSubject: m2\n\nm2 body\n\n--foo--\n\nepilogue\n"
)


def test_dovecot_fetch_body_message_rfc822_mime() -> None:
    # imaptest src/tests/fetch-body-message-rfc822-mime: the whole message is message/rfc822,
    # so BODY[1] is its body (RFC 3501 6.4.5: a non-multipart message has only part 1).
    raw = DIGEST_IN_MESSAGE
    summary = summarize_message(raw)
    inner = raw.split(b"\r\n\r\n", 1)[1]

    def section(part: tuple[int, ...], spec: str | None = None) -> bytes:
        return section_bytes(raw, summary, part, spec, None, False)

    assert section((), "TEXT") == inner
    assert section((1,)) == inner
    assert section((1,), "HEADER") == crlf(
        "From: sub@domain.org\nDate: Sun, 12 Aug 2012 12:34:56 +0300\nSubject: submsg\n"
        'Content-Type: multipart/digest; boundary="foo"\n\n'
    )
    assert section((1,), "TEXT") == inner.split(b"\r\n\r\n", 1)[1]
    assert section((1, 1)) == crlf("From: m1@example.com\nSubject: m1\n\nm1 body\n")
    assert section((1, 1), "MIME") == b"\r\n"
    assert section((1, 1), "HEADER") == crlf("From: m1@example.com\nSubject: m1\n\n")
    assert section((1, 1), "TEXT") == crlf("m1 body\n")
    assert section((1, 2)) == crlf("From: m2@example.com\nSubject: m2\n\nm2 body\n")
    assert section((1, 2), "MIME") == crlf("X-Mime: m2 header\n\n")
    assert section((1, 2), "HEADER") == crlf("From: m2@example.com\nSubject: m2\n\n")
    assert section((1, 2), "TEXT") == crlf("m2 body\n")


def test_dovecot_fetch_body_message_rfc822_x2() -> None:
    # imaptest src/tests/fetch-body-message-rfc822-x2: message/rfc822 inside message/rfc822.
    innermost = "From: sub@domain.org\nDate: Sun, 12 Aug 2012 12:34:56 +0300\nSubject: submsg\n\n"
    middle_header = (
        "From: user2@domain.org\nDate: Fri, 23 Mar 2007 11:22:33 +0200\nMime-Version: 1.0\n"
        "Content-Type: message/rfc822\n\n"
    )
    raw = crlf(
        "From: user@domain.org\nDate: Sat, 24 Mar 2007 23:00:00 +0200\nMime-Version: 1.0\n"
        "Content-Type: message/rfc822\n\n" + middle_header + innermost + "Hello world\n"
    )
    summary = summarize_message(raw)

    def section(part: tuple[int, ...], spec: str | None = None) -> bytes:
        return section_bytes(raw, summary, part, spec, None, False)

    assert section((1,)) == crlf(middle_header + innermost + "Hello world\n")
    assert section((1, 1)) == crlf(innermost + "Hello world\n")
    assert section((1,), "HEADER") == crlf(middle_header)
    assert section((1,), "TEXT") == crlf(innermost + "Hello world\n")
    assert section((1, 1, 1)) == crlf("Hello world\n")
    assert section((1, 1), "HEADER") == crlf(innermost)
    assert section((1, 1), "TEXT") == crlf("Hello world\n")


def test_single_part_message_numbering() -> None:
    raw = crlf("Subject: one\nContent-Type: text/plain\n\nbody\n")
    summary = summarize_message(raw)
    assert section_bytes(raw, summary, (1,), None, None, False) == b"body\r\n"
    # Part 1's MIME header of a single-part message is the message header.
    assert section_bytes(raw, summary, (1,), "MIME", None, False) == crlf(
        "Subject: one\nContent-Type: text/plain\n\n"
    )
    assert section_bytes(raw, summary, (), "TEXT", None, False) == b"body\r\n"
    # Parts that do not exist, and HEADER of a part that is not a message: empty.
    assert section_bytes(raw, summary, (2,), None, None, False) == b""
    assert section_bytes(raw, summary, (1, 1), None, None, False) == b""
    assert section_bytes(raw, summary, (0,), None, None, False) == b""
    assert section_bytes(raw, summary, (1,), "HEADER", None, False) == b""
    assert find_part(summary, (1,)) is summary.root


def test_header_fields_case_insensitive_folded_repeated_and_bare_lf() -> None:
    raw = b"Received: a\nSUBJECT: first\n line two\nX-Other: y\nsubject: again\nTo:\n t@x\n\nbody\n"
    summary = summarize_message(raw)
    assert section_bytes(raw, summary, (), "HEADER.FIELDS", ["Subject", "TO"], False) == (
        b"SUBJECT: first\n line two\nsubject: again\nTo:\n t@x\n\n"
    )
    assert section_bytes(raw, summary, (), "header.fields.not", ["subject", "to"], False) == (
        b"Received: a\nX-Other: y\n\n"
    )
    assert section_bytes(raw, summary, (), "HEADER.FIELDS", ["nothing"], False) == b"\n"
    assert section_bytes(raw, summary, (), "HEADER", None, False) == raw[: raw.index(b"body")]


def test_header_fields_of_a_message_without_body_still_end_with_a_blank_line() -> None:
    raw = b"Subject: x\r\nTo: y"
    summary = summarize_message(raw)
    assert section_bytes(raw, summary, (), "HEADER.FIELDS", ["to"], False) == b"To: y\r\n\r\n"


def test_bad_specifiers_raise() -> None:
    raw = b"Subject: x\r\n\r\nbody"
    summary = summarize_message(raw)
    with pytest.raises(ValueError):
        section_bytes(raw, summary, (), "BODY", None, False)
    with pytest.raises(ValueError):
        section_bytes(raw, summary, (), "MIME", None, False)


def test_rfc3501_section_numbering_example() -> None:
    # RFC 3501 6.4.5: the example part tree, down to 4.2.2.2.
    raw = crlf(
        "Subject: top\nContent-Type: MULTIPART/MIXED; boundary=o\n\n"
        "--o\nContent-Type: TEXT/PLAIN\n\np1\n"
        "--o\nContent-Type: APPLICATION/OCTET-STREAM\n\np2\n"
        "--o\nContent-Type: MESSAGE/RFC822\n\nSubject: three\n"
        "Content-Type: MULTIPART/MIXED; boundary=t\n\n--t\n\np3.1\n"
        "--t\nContent-Type: APPLICATION/OCTET-STREAM\n\np3.2\n--t--\n"
        "--o\nContent-Type: MULTIPART/MIXED; boundary=f\n\n"
        "--f\nContent-Type: IMAGE/GIF\n\np4.1\n"
        "--f\nContent-Type: MESSAGE/RFC822\n\nSubject: four-two\n"
        "Content-Type: MULTIPART/MIXED; boundary=g\n\n--g\n\np4.2.1\n"
        "--g\nContent-Type: MULTIPART/ALTERNATIVE; boundary=h\n\n"
        "--h\n\np4.2.2.1\n--h\nContent-Type: TEXT/RICHTEXT\n\np4.2.2.2\n--h--\n"
        "--g--\n--f--\n--o--\n"
    )
    summary = summarize_message(raw)

    def body(*part: int) -> bytes:
        return section_bytes(raw, summary, part, None, None, False)

    assert [body(1), body(2), body(3, 1), body(3, 2), body(4, 1)] == [
        b"p1",
        b"p2",
        b"p3.1",
        b"p3.2",
        b"p4.1",
    ]
    assert [body(4, 2, 1), body(4, 2, 2, 1), body(4, 2, 2, 2)] == [
        b"p4.2.1",
        b"p4.2.2.1",
        b"p4.2.2.2",
    ]
    assert section_bytes(raw, summary, (3,), "HEADER.FIELDS", ["subject"], False) == (
        b"Subject: three\r\n\r\n"
    )
    assert section_bytes(raw, summary, (4, 2), "HEADER.FIELDS", ["subject"], False) == (
        b"Subject: four-two\r\n\r\n"
    )
    assert section_bytes(raw, summary, (4, 1), "MIME", None, False) == (
        b"Content-Type: IMAGE/GIF\r\n\r\n"
    )
    assert section_bytes(raw, summary, (4,), "TEXT", None, False) == b""
