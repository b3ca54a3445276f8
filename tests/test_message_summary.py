"""Tests for storage.message_summary: part tree and offsets, envelope, search data, limits.

Corpus-based tests read ../shared/corpus (GOVMAIL_CORPUS overrides) and skip, saying so, when
it is absent.
"""

from __future__ import annotations

import base64
import os
import time
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from storage.message_summary import (
    MAX_DEPTH,
    MAX_PARTS,
    Address,
    MessageSummary,
    MimePart,
    decode_charset,
    decode_header_text,
    parse_address_list,
    summarize_message,
    text_for_search,
)

CORPUS = Path(os.environ.get("GOVMAIL_CORPUS", Path(__file__).parents[2] / "shared" / "corpus"))
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")


def corpus_file(relative: str) -> bytes:
    path = CORPUS / relative
    if not path.is_file():
        pytest.skip(f"test corpus file {relative} is absent (../shared/corpus)")
    return path.read_bytes()


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def tree(part: MimePart, number: str = "") -> list[tuple[str, str]]:
    """(section, type/subtype) of every part, lower-cased, message/rfc822 bodies as N.0."""
    rows = [(number or "0", f"{part.type}/{part.subtype}".lower())]
    for index, child in enumerate(part.children, 1):
        if part.is_message:
            rows.extend(tree(child, f"{number}.0" if number else "0.0"))
        else:
            rows.extend(tree(child, f"{number}.{index}" if number else str(index)))
    return rows


# --- structure and offsets -------------------------------------------------------------------

NESTED = """From: Outer <outer@example.org>
Subject: outer
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: text/plain; charset=utf-8

first body
--outer
Content-Type: message/rfc822

From: Inner <inner@example.org>
Subject: inner
Content-Type: multipart/alternative; boundary=inner

--inner

implicit text/plain
--inner
Content-Type: text/html

<p>inner html</p>
--inner--
inner epilogue
--outer--
outer epilogue
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_offsets_cut_exact_header_and_body_bytes(newline: str) -> None:
    raw = NESTED.replace("\n", newline).encode()
    summary = summarize_message(raw)
    nl = newline.encode()
    root = summary.root
    assert raw[root.header_start : root.body_start].endswith(nl + nl)
    assert root.body_end == len(raw)
    first, message = root.children
    assert raw[first.header_start : first.body_start] == (
        b"Content-Type: text/plain; charset=utf-8" + nl + nl
    )
    assert raw[first.body_start : first.body_end] == b"first body"
    assert first.lines == 0 and first.size == len(b"first body")
    inner = message.children[0]
    assert raw[message.body_start : message.body_end] == raw[inner.header_start : inner.body_end]
    assert raw[message.body_start : message.body_end].endswith(b"inner epilogue")
    implicit, html = inner.children
    assert raw[implicit.header_start : implicit.body_start] == nl
    assert raw[implicit.body_start : implicit.body_end] == b"implicit text/plain"
    assert (implicit.type, implicit.subtype, implicit.params) == ("text", "plain", [])
    assert raw[html.body_start : html.body_end] == b"<p>inner html</p>"
    assert message.envelope is not None and message.envelope.subject == "inner"
    assert message.lines == raw[message.body_start : message.body_end].count(b"\n")
    assert tree(root) == [
        ("0", "multipart/mixed"),
        ("1", "text/plain"),
        ("2", "message/rfc822"),
        ("2.0", "multipart/alternative"),
        ("2.0.1", "text/plain"),
        ("2.0.2", "text/html"),
    ]


def test_torture_test_part_tree() -> None:
    raw = corpus_file("flanker/tests/fixtures/messages/torture.eml")
    summary = summarize_message(raw)
    assert summary.envelope.subject == "Multi-media mail demonstration"
    assert tree(summary.root) == [
        ("0", "multipart/mixed"),
        ("1", "text/plain"),
        ("2", "message/rfc822"),
        ("2.0", "multipart/alternative"),
        ("2.0.1", "text/plain"),
        ("2.0.2", "multipart/mixed"),
        ("2.0.2.1", "text/richtext"),
        ("2.0.3", "application/andrew-inset"),
        ("3", "message/rfc822"),
        ("3.0", "audio/basic"),
        ("4", "audio/basic"),
        ("5", "image/pbm"),
        ("6", "message/rfc822"),
        ("6.0", "multipart/mixed"),
        ("6.0.1", "multipart/mixed"),
        ("6.0.1.1", "text/plain"),
        ("6.0.1.2", "audio/x-sun"),
        ("6.0.2", "multipart/mixed"),
        ("6.0.2.1", "image/gif"),
        ("6.0.2.2", "image/gif"),
        ("6.0.2.3", "application/x-be2"),
        ("6.0.2.4", "application/atomicmail"),
        ("6.0.3", "audio/x-sun"),
        ("7", "message/rfc822"),
        ("7.0", "multipart/mixed"),
        ("7.0.1", "text/plain"),
        ("7.0.2", "image/pgm"),
        ("7.0.3", "text/plain"),
        ("8", "message/rfc822"),
        ("8.0", "multipart/mixed"),
        ("8.0.1", "text/plain"),
        ("8.0.2", "image/pbm"),
        ("9", "message/rfc822"),
        ("9.0", "application/postscript"),
        ("10", "image/gif"),
        ("11", "message/rfc822"),
        ("11.0", "multipart/mixed"),
        ("11.0.1", "audio/basic"),
        ("11.0.2", "audio/basic"),
        ("12", "message/rfc822"),
        ("12.0", "multipart/mixed"),
        ("12.0.1", "application/postscript"),
        # "Content-Type: BINARY" has no subtype: invalid, so text/plain (RFC 2045 5.2).
        ("12.0.2", "text/plain"),
        ("12.0.3", "message/rfc822"),
        ("12.0.3.0", "multipart/mixed"),
        ("12.0.3.0.1", "text/plain"),
        ("12.0.3.0.2", "multipart/parallel"),
        ("12.0.3.0.2.1", "image/gif"),
        ("12.0.3.0.2.2", "audio/basic"),
        ("12.0.3.0.3", "application/atomicmail"),
        ("12.0.3.0.4", "message/rfc822"),
        ("12.0.3.0.4.0", "audio/x-sun"),
    ]
    # Every body lies inside its parent's body, in order.
    for part in summary.root.walk():
        assert part.header_start <= part.body_start <= part.body_end <= len(raw)
        previous = part.body_start
        for child in part.children:
            assert previous <= child.header_start
            previous = child.body_end
        assert previous <= part.body_end


def test_missing_close_delimiter_extends_last_part_to_end() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\nContent-Type: text/html\n\n"
        "<b>two</b>\ntrailing\n"
    )
    summary = summarize_message(raw)
    one, two = summary.root.children
    assert raw[one.body_start : one.body_end] == b"one"
    assert raw[two.body_start : two.body_end] == b"<b>two</b>\r\ntrailing\r\n"
    assert two.body_end == len(raw) == summary.root.body_end


def test_multipart_without_boundary_parameter_is_text_plain() -> None:
    raw = crlf("Content-Type: multipart/mixed\n\n--x\n\nbody\n--x--\n")
    root = summarize_message(raw).root
    assert (root.type, root.subtype, root.children) == ("text", "plain", [])
    assert root.lines == 4


def test_boundary_never_seen_gives_multipart_without_parts() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=nowhere\n\njust text\n")
    root = summarize_message(raw).root
    assert root.is_multipart and root.children == []
    assert raw[root.body_start : root.body_end] == b"just text\r\n"


def test_parent_boundary_ends_unterminated_child_multipart() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=outer\n\n--outer\n"
        "Content-Type: multipart/alternative; boundary=inner\n\n--inner\n\nin-a\n"
        "--outer\n\nsecond outer part\n--outer--\n"
    )
    root = summarize_message(raw).root
    child, second = root.children
    assert child.is_multipart and len(child.children) == 1
    assert raw[child.children[0].body_start : child.children[0].body_end] == b"in-a"
    assert raw[second.body_start : second.body_end] == b"second outer part"


def test_delimiter_with_trailing_blanks_and_garbage() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\na\n--b junk\n\nb\n--b-- x\n")
    root = summarize_message(raw).root
    assert [raw[p.body_start : p.body_end] for p in root.children] == [b"a", b"b"]


def test_digest_parts_default_to_message_rfc822() -> None:
    raw = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: m1\n\nbody one\n"
        "--d\nContent-Type: text/plain\n\nplain\n--d--\n"
    )
    first, second = summarize_message(raw).root.children
    assert (first.type, first.subtype) == ("message", "rfc822")
    assert first.envelope is not None and first.envelope.subject == "m1"
    assert (second.type, second.subtype) == ("text", "plain")


def test_message_global_is_parsed_and_encoded_message_is_opaque() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/global\n\n"
        "Subject: Thư mới\n\nnội dung\n--b\nContent-Type: message/rfc822\n"
        "Content-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoKeQo=\n--b--\n"
    )
    global_part, encoded = summarize_message(raw).root.children
    assert global_part.envelope is not None and global_part.envelope.subject == "Thư mới"
    assert encoded.envelope is None and encoded.children == []
    assert (encoded.type, encoded.subtype) == ("application", "octet-stream")


def test_header_without_blank_line_and_empty_message() -> None:
    only_header = summarize_message(b"Subject: no body")
    assert only_header.root.body_start == only_header.root.body_end == 16
    assert only_header.envelope.subject == "no body"
    empty = summarize_message(b"")
    assert (empty.root.body_start, empty.root.body_end, empty.size) == (0, 0, 0)
    assert empty.envelope.from_ == []


def test_rfc2231_parameters_joined_and_decoded() -> None:
    raw = crlf(
        "Content-Type: application/pdf;\n name*0*=utf-8''Bi%C3%AAn%20b%E1%BA%A3n;\n"
        ' name*1=" h\u00f4m nay.pdf"; x*0=abc; x*1="def"\n'
        "Content-Disposition: attachment; filename*=windows-1258''V%C3n%20b%D2n.doc\n\nx\n"
    )
    part = summarize_message(raw).root
    # Continuations are joined; the extended form stays encoded, as Dovecot returns it.
    assert part.params == [
        ("name*", "utf-8''Bi%C3%AAn%20b%E1%BA%A3n%20h%C3%B4m%20nay.pdf"),
        ("x", "abcdef"),
    ]
    assert part.param("name") == "Biên bản hôm nay.pdf"
    assert part.param("NAME") == "Biên bản hôm nay.pdf"
    assert part.param("x") == "abcdef"
    assert part.param("missing") is None
    assert part.disposition == "attachment"
    # windows-1258: 0xC3 is Ă, 0xD2 is the combining hook above.
    assert part.disposition_param("filename") == "V\u0102n b\u0309n.doc"


def test_content_fields_are_kept_raw() -> None:
    raw = crlf(
        'Content-Type: TEXT/PLAIN; CHARSET="US-ASCII" (comment); format=flowed\n'
        "Content-ID: <id@x>\nContent-Description: =?utf-8?q?M=C3=B4_t=E1=BA=A3?=\n"
        "Content-Transfer-Encoding: QUOTED-PRINTABLE\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
        "Content-Language: vi, en-US\nContent-Location: http://example.org/a\n\nhello=\n\n"
    )
    part = summarize_message(raw).root
    assert (part.type, part.subtype) == ("TEXT", "PLAIN")
    assert part.params == [("CHARSET", "US-ASCII"), ("format", "flowed")]
    assert part.content_id == "<id@x>"
    assert part.description == "=?utf-8?q?M=C3=B4_t=E1=BA=A3?="
    assert part.encoding == "QUOTED-PRINTABLE"
    assert part.md5 == "Q2hlY2sgSW50ZWdyaXR5IQ=="
    assert part.language == ["vi", "en-US"]
    assert part.location == "http://example.org/a"
    assert part.lines == 2


# --- envelope and search headers ---------------------------------------------------------------


def test_envelope_defaults_groups_routes_and_comments() -> None:
    raw = crlf(
        "Date: Tue, 01 Jul 2025 08:30:00 +0700\n"
        "Subject: =?UTF-8?B?Q8O0bmcgdsSDbiBz4buR?= 123\n"
        'From: "Nguyễn Văn A" <anv.skhcn@hanoi.gov.vn>\n'
        "Reply-To:\n"
        "To: Ban Giam doc: giamdoc@x.gov.vn, (Chu tich) pho@x.gov.vn;,\n"
        " <@relay1,@relay2:routed@y.gov.vn>, bare\n"
        "Cc: undisclosed-recipients:;\n"
        "Message-ID: <abc@hanoi.gov.vn>\nIn-Reply-To: <prev@x>\n\nbody\n"
    )
    envelope = summarize_message(raw).envelope
    sender = [Address("Nguyễn Văn A", None, "anv.skhcn", "hanoi.gov.vn")]
    assert envelope.from_ == sender
    assert envelope.sender == sender and envelope.reply_to == sender
    assert envelope.subject == "=?UTF-8?B?Q8O0bmcgdsSDbiBz4buR?= 123"
    assert envelope.to == [
        Address(None, None, "Ban Giam doc", None),
        Address(None, None, "giamdoc", "x.gov.vn"),
        Address("Chu tich", None, "pho", "x.gov.vn"),
        Address(None, None, None, None),
        Address(None, "@relay1,@relay2", "routed", "y.gov.vn"),
        Address(None, None, "bare", ""),
    ]
    assert envelope.cc == [
        Address(None, None, "undisclosed-recipients", None),
        Address(None, None, None, None),
    ]
    assert envelope.bcc == []
    assert (envelope.message_id, envelope.in_reply_to) == ("<abc@hanoi.gov.vn>", "<prev@x>")


def test_search_headers_are_decoded() -> None:
    raw = crlf(
        "From: =?utf-8?Q?Nguy=E1=BB=85n_V=C4=83n_A?= <a@x.gov.vn>\n"
        "To: =?windows-1258?Q?Tr=E2=CCn?= <b@x.gov.vn>, c@x.gov.vn\n"
        "Subject: =?UTF-8?B?VsSDbiBi4bqjbiA=?=\n =?UTF-8?B?c+G7kSAxMg==?=\n"
        "Date: Tue, 01 Jul 2025 08:30:00 +0700\nMessage-ID: <m@x>\n\n"
    )
    headers = summarize_message(raw).search_headers
    assert headers.from_ == "Nguyễn Văn A <a@x.gov.vn>"
    assert headers.to == "Trâ\u0300n <b@x.gov.vn>, c@x.gov.vn"
    assert headers.subject == "Văn bản số 12"
    assert headers.date == datetime(2025, 7, 1, 8, 30, tzinfo=timezone(timedelta(hours=7)))
    assert headers.date.astimezone(UTC).hour == 1
    assert headers.message_id == "<m@x>"
    assert summarize_message(b"Date: yesterday-ish\n\n").search_headers.date is None


def test_encoded_word_split_inside_a_character_is_joined() -> None:
    # "ễ" is E1 BB 85 in UTF-8; the sender's MUA split it across two encoded words.
    assert decode_header_text("=?utf-8?Q?Nguy=E1=BB?= =?utf-8?Q?=85n?=") == "Nguyễn"
    assert decode_header_text("a =?utf-8?q?b?=  c") == "a b  c"
    assert decode_header_text("=?utf-8*vi?Q?Vi=E1=BB=87t?=") == "Việt"
    assert decode_header_text("=?x-bogus?B?SGVsbG8=?=") == "Hello"
    assert decode_header_text("=?utf-8?B?!!!?=") == ""
    assert decode_header_text("Ti\u00eau \udce9") == "Tiêu é"


def test_address_parser_survives_garbage() -> None:
    assert parse_address_list("") == []
    assert parse_address_list('"unterminated <a@b') == [
        Address(None, None, "unterminated <a@b", "")
    ]
    for garbage in ["<<<>>>", ";;;::,,", "(((", "@@@", '"\\', "a@", "<@a:>", ":;:;"]:
        parse_address_list(garbage)  # must not raise or hang


def test_stack_overflow_message_from_mimekit() -> None:
    raw = corpus_file("mimekit/UnitTests/TestData/messages/stack-overflow.txt")
    started = time.monotonic()
    summary = summarize_message(raw)
    assert time.monotonic() - started < 5
    assert summary.envelope.subject == "Message Subject"
    assert summary.envelope.to[0] == Address("test", None, "test", "test.com")
    assert summary.root.type == "text"
    assert text_for_search(raw, summary).strip() == "Message Body"


@pytest.mark.parametrize(
    ("name", "text_start"),
    [
        ("outofmemory.eml", "$1 million in Life Insurance Coverage\n%^^%"),
        ("large_text.eml", "Exception during installation:\nMay 29 12:30:57 ubuntu"),
        ("htmllargecallstack.eml", "}}))}*)?}<{{^{{_{*{>^*{{|)?"),
    ],
)
def test_nodemailer_dos_inputs(name: str, text_start: str) -> None:
    raw = corpus_file(f"nodemailer-mailparser/test/fixtures/{name}")
    started = time.monotonic()
    summary = summarize_message(raw)
    text = text_for_search(raw, summary)
    assert time.monotonic() - started < 10
    assert summary.part_count == 1 and summary.root.body_end == len(raw)
    assert text.startswith(text_start)
    assert len(text) > 500_000


# --- limits ----------------------------------------------------------------------------------


def test_nesting_depth_is_bounded() -> None:
    raw = b"Content-Type: message/rfc822\r\n\r\n" * 5000 + b"Subject: deep\r\n\r\nbody\r\n"
    summary = summarize_message(raw)
    depth, part = 0, summary.root
    while part.children:
        part, depth = part.children[0], depth + 1
    assert depth == MAX_DEPTH
    assert summary.truncated
    assert (part.type, part.subtype) == ("application", "octet-stream")
    assert MessageSummary.from_json(summary.to_json()) == summary


def test_deep_multiparts_and_many_boundary_lines_stay_fast() -> None:
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(300)
    )
    raw = head + b"\r\n" + b"--zz\r\n" * 300_000
    started = time.monotonic()
    summary = summarize_message(raw)
    assert time.monotonic() - started < 5
    assert summary.truncated and summary.part_count == MAX_DEPTH + 1


def test_part_count_is_bounded() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\n\r\na\r\n" * 20_000
    summary = summarize_message(raw + b"--x--\r\n")
    assert summary.part_count == MAX_PARTS
    assert len(summary.root.children) == MAX_PARTS - 1
    assert summary.truncated


def test_headers_without_blank_lines_are_not_quadratic() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\nA: b\r\n" * 60_000
    started = time.monotonic()
    summary = summarize_message(raw)
    assert time.monotonic() - started < 5
    first = summary.root.children[0]
    assert raw[first.header_start : first.body_start] == b"A: b"


# --- JSON --------------------------------------------------------------------------------------


def test_json_round_trip_is_compact_and_keeps_raw_8bit_bytes() -> None:
    raw = b"Subject: caf\xe9 \xff\r\nFrom: a@b\r\nSender: a@b\r\n\r\nx\r\n"
    summary = summarize_message(raw)
    data = summary.to_json()
    data.decode("utf-8")  # valid UTF-8 for a json/jsonb/text column
    restored = MessageSummary.from_json(data)
    assert restored == summary
    assert restored.envelope.subject is not None
    assert restored.envelope.subject.encode("utf-8", "surrogateescape") == b"caf\xe9 \xff"
    # Sender equal to From is stored once.
    assert data.count(b'"a"') == 1
    assert len(data) < 120
    with pytest.raises(ValueError):
        MessageSummary.from_json(b"[2]")


# --- text for search -----------------------------------------------------------------------------


def test_text_for_search_decodes_transfer_encodings_and_charsets() -> None:
    b64 = base64.encodebytes("Kính gửi: Sở Khoa học".encode()).decode()
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        f"{b64}\n--b\n"
        "Content-Type: text/html; charset=windows-1258\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "<html><head><title>t</title><style>p{}</style></head><body><p>V=E2n b=E3n=\n"
        "</p><script>x()</script>&amp; k&#7871;t</body></html>\n--b\n"
        "Content-Type: text/plain; charset=x-unknown\n\nlatin \xe9\n--b\n"
        "Content-Type: image/png\nContent-Transfer-Encoding: base64\n\nAAAA\n--b--\n"
    ).replace(b"latin \xc3\xa9", b"latin \xe9")
    summary = summarize_message(raw)
    assert text_for_search(raw, summary) == ("Kính gửi: Sở Khoa học\nt\nVân băn\n& kết\nlatin é")


def test_windows_1258_udhr_body() -> None:
    data = corpus_file("vietnamese-text/derived/vie.CP1258.txt")
    published = corpus_file("vietnamese-text/derived/vie.utf8.as-published.txt").decode()
    raw = b"Content-Type: text/plain; charset=windows-1258\r\n\r\n" + data
    summary = summarize_message(raw)
    text = text_for_search(raw, summary)
    assert text.startswith("Tuyên ngôn")
    assert unicodedata.normalize("NFC", text) == unicodedata.normalize("NFC", published)


def test_viscii_and_tcvn_bodies_when_codecs_are_registered() -> None:
    from storage.vn_charsets import register_vietnamese_codecs

    register_vietnamese_codecs()
    nfc = corpus_file("vietnamese-text/derived/vie.utf8.nfc.txt").decode()
    for charset, name in [("VISCII", "VISCII"), ("TCVN5712-1", "TCVN5712-1")]:
        data = corpus_file(f"vietnamese-text/derived/vie.{name}.txt")
        raw = f"Content-Type: text/plain; charset={charset}\r\n\r\n".encode() + data
        text = text_for_search(raw, summarize_message(raw))
        assert unicodedata.normalize("NFC", text) == nfc


def test_decode_charset_never_fails() -> None:
    assert decode_charset(b"\xc3\xa9", "us-ascii") == "é"
    assert decode_charset(b"\xe9", "us-ascii") == "é"
    assert decode_charset(b"\xe9", "no-such-charset") == "é"
    assert decode_charset(b"\xff\xfe", "utf-8") == "\ufffd\ufffd"
    assert decode_charset(b"abc", "base64") == "abc"  # not a charset
    assert decode_charset(b"\xe2", "windows-1258") == "â"


# --- the whole corpus ---------------------------------------------------------------------------


def test_every_corpus_message_summarises() -> None:
    if not CORPUS.is_dir():
        pytest.skip("test corpus ../shared/corpus is absent")
    started = time.monotonic()
    count = 0
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        raw = path.read_bytes()
        summary = summarize_message(raw)
        assert summary.root.body_end == len(raw), path
        assert MessageSummary.from_json(summary.to_json()) == summary, path
        text_for_search(raw, summary)
        count += 1
    assert count > 1000
    assert time.monotonic() - started < 60
