"""Tests for mailserver.smtp.address: envelope path parsing and relaying-trick detection."""

from __future__ import annotations

import pytest

from mailserver.smtp.address import (
    NULL_PATH,
    AddressError,
    NonAsciiAddressError,
    ParsedPath,
    PathSyntaxError,
    RelayDenied,
    normalise_domain,
    parse_path,
    relay_trick,
    split_plus,
)

RCPT_501 = "501 5.1.3 Bad recipient address syntax"
MAIL_501 = "501 5.1.7 Bad sender address syntax"
FULLWIDTH = "fullwidth or compatibility characters in domain"


# --- parse_path: what is accepted, and what it becomes -----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<thanhnn.skhcn@hanoi.gov.vn>", ParsedPath("thanhnn.skhcn", "hanoi.gov.vn")),
        ("  <a@b.vn>  ", ParsedPath("a", "b.vn")),
        ("<A.B+tag@Example.COM>", ParsedPath("A.B+tag", "Example.COM")),
        ("<!#$%&'*+-/=?^_`{|}~@x.vn>", ParsedPath("!#$%&'*+-/=?^_`{|}~", "x.vn")),
        ('<"john smith"@x.vn>', ParsedPath("john smith", "x.vn", quoted=True)),
        ('<"a\\"b\\\\c"@x.vn>', ParsedPath('a"b\\c', "x.vn", quoted=True)),
        ('<""@x.vn>', ParsedPath("", "x.vn", quoted=True)),
        ("<u@[192.0.2.1]>", ParsedPath("u", "[192.0.2.1]")),
        ("<u@[IPv6:2001:db8::1]>", ParsedPath("u", "[IPv6:2001:db8::1]")),
        ("<u@[x-tag:abc]>", ParsedPath("u", "[x-tag:abc]")),
        ("<@relay.vn:u@x.vn>", ParsedPath("u", "x.vn", source_route=("relay.vn",))),
        ("<@a.vn,@b.vn:u@c.vn>", ParsedPath("u", "c.vn", source_route=("a.vn", "b.vn"))),
        ("<Postmaster>", ParsedPath("Postmaster", "")),
        ("<postMASTER>", ParsedPath("postMASTER", "")),
        ("<u@a-b.c1.vn>", ParsedPath("u", "a-b.c1.vn")),
        ("<u@xn--b-y-t-s61b7g.gov.vn>", ParsedPath("u", "xn--b-y-t-s61b7g.gov.vn")),
    ],
)
def test_parse_path_accepts_rfc5321_forms(text: str, expected: ParsedPath) -> None:
    assert parse_path(text, smtputf8=False) == expected


def test_null_reverse_path() -> None:
    parsed = parse_path("<>", smtputf8=False, sender=True)
    assert parsed is NULL_PATH
    assert parsed.is_null
    assert str(parsed) == "<>"
    assert parsed.mailbox() == ""


def test_null_path_refused_as_recipient() -> None:
    with pytest.raises(PathSyntaxError) as caught:
        parse_path("<>", smtputf8=False)
    assert caught.value.reply == RCPT_501
    assert caught.value.code == 501


def test_bare_postmaster_only_as_recipient() -> None:
    with pytest.raises(PathSyntaxError) as caught:
        parse_path("<Postmaster>", smtputf8=False, sender=True)
    assert caught.value.reply == MAIL_501


def test_utf8_path_with_smtputf8() -> None:
    parsed = parse_path("<nguyễn.thành@sở-y-tế.hànội.vn>", smtputf8=True)
    assert parsed == ParsedPath("nguyễn.thành", "sở-y-tế.hànội.vn")
    assert relay_trick(parsed) is None


def test_utf8_quoted_local_part_with_smtputf8() -> None:
    assert parse_path('<"Thành NN"@x.vn>', smtputf8=True) == ParsedPath(
        "Thành NN", "x.vn", quoted=True
    )


@pytest.mark.parametrize("text", ["<thành@x.vn>", "<u@sở.vn>", '<"ê"@x.vn>', "<@sở.vn:u@x.vn>"])
def test_non_ascii_without_smtputf8_is_553(text: str) -> None:
    with pytest.raises(NonAsciiAddressError) as caught:
        parse_path(text, smtputf8=False)
    assert caught.value.reply == "553 5.6.7 Non-ASCII addresses require SMTPUTF8"
    assert caught.value.code == 553


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<",
        ">",
        "u@x.vn",  # no angle brackets
        "<u@x.vn",
        "u@x.vn>",
        "<<u@x.vn>>",
        "<u>",  # no domain (and not postmaster)
        "<u@>",
        "<@x.vn>",
        "<.u@x.vn>",
        "<u.@x.vn>",
        "<u..v@x.vn>",
        "<u v@x.vn>",
        "<u@@x.vn>",
        "<u@x.vn@y.vn>",
        "<u(comment)@x.vn>",
        "<u@x.vn.>",  # trailing dot
        "<u@x..vn>",  # empty label
        "<u@.x.vn>",
        "<u@-x.vn>",
        "<u@x-.vn>",
        "<u@x_y.vn>",
        "<u@x.vn:25>",
        '<"unterminated@x.vn>',
        '<"a"b@x.vn>',
        '<"a\\\x01"@x.vn>',  # quoted-pair of a control character
        '<"a\tb"@x.vn>',
        "<u\x00@x.vn>",
        "<u\r\n@x.vn>",
        "<u@[1.2.3.256]>",
        "<u@[1.2.3]>",
        "<u@[01.2.3.4]>",
        "<u@[IPv6:2001:db8::g]>",
        "<u@[IPv6:fe80::1%eth0]>",
        "<u@[1.2.3.4>",
        "<u@[]>",
        "<@relay.vn,u@x.vn>",  # route without ':'
        "<@relay.vn:>",
        "<relay.vn:u@x.vn>",
        "<@,@a.vn:u@x.vn>",
        "<@[1.2.3.4]:u@x.vn>",  # literals are not allowed in an A-d-l
        "<u@xn--zz.vn>",  # undecodable A-label
        "<u@xn--abc-.vn>",
        "<Postmaster@>",
    ],
)
def test_parse_path_refuses_bad_syntax(text: str) -> None:
    with pytest.raises(PathSyntaxError) as caught:
        parse_path(text, smtputf8=True)
    assert caught.value.reply == RCPT_501


@pytest.mark.parametrize(
    "text",
    [
        "<u@ｇｏｖ.vn>",  # fullwidth letters
        "<u@Sở.vn>",  # upper-case U-label
        "<u@so\u0309.vn>",  # NFD: combining hook above
        "<u@\u0301a.vn>",
        "<u@a\u200db.vn>",  # zero-width joiner
        "<u@a\u00a0b.vn>",
        "<u\u200b@x.vn>",  # zero-width space in local part
        "<u\u202e@x.vn>",  # bidi override
        "<\ud800@x.vn>",  # lone surrogate
        "<u@bộ--y.vn>",
        "<u@x.vn\u3002>",
    ],
)
def test_parse_path_refuses_bad_unicode(text: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse_path(text, smtputf8=True)


def test_sender_errors_use_sender_status_code() -> None:
    with pytest.raises(PathSyntaxError) as caught:
        parse_path("<bad..dots@x.vn>", smtputf8=False, sender=True)
    assert caught.value.reply == MAIL_501
    assert "empty atom" in caught.value.detail


def test_length_limits_at_the_edge() -> None:
    local64 = "a" * 64
    assert parse_path(f"<{local64}@x.vn>", smtputf8=False).local_part == local64
    with pytest.raises(PathSyntaxError, match="local part too long"):
        parse_path(f"<{'a' * 65}@x.vn>", smtputf8=False)
    # 64 octets of UTF-8 is only 32 two-byte characters.
    with pytest.raises(PathSyntaxError, match="local part too long"):
        parse_path(f"<{'ê' * 33}@x.vn>", smtputf8=True)
    with pytest.raises(PathSyntaxError, match="domain label too long"):
        parse_path(f"<u@{'a' * 64}.vn>", smtputf8=False)
    # Path of exactly 256 octets: "<" + 64 + "@" + 189 + ">" = 256.
    domain = ".".join(["a" * 62, "b" * 62, "c" * 63])
    assert len(domain) == 189
    assert parse_path(f"<{local64}@{domain}>", smtputf8=False).domain == domain
    with pytest.raises(PathSyntaxError, match="path too long"):
        parse_path(f"<{local64}@{domain}x>", smtputf8=False)


def test_huge_input_is_refused_quickly() -> None:
    with pytest.raises(PathSyntaxError, match="path too long"):
        parse_path("<" + '"' * 1_000_000 + ">", smtputf8=True)


def test_mailbox_and_str_round_trip() -> None:
    parsed = parse_path('<@a.vn:"x \\"y\\""@b.vn>', smtputf8=False)
    assert parsed.mailbox() == '"x \\"y\\""@b.vn'
    assert str(parsed) == '<@a.vn:"x \\"y\\""@b.vn>'
    assert parse_path(str(parsed), smtputf8=False) == parsed
    assert str(parse_path("<Postmaster>", smtputf8=False)) == "<Postmaster>"


# --- relay_trick ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<user%other.org@local.gov.vn>", "percent hack in local part"),
        ("<host!user@local.gov.vn>", "bang path in local part"),
        ("<@relay.example:user@local.gov.vn>", "source route"),
        ('<"user@other.org"@local.gov.vn>', "quoted local part containing '@', '%' or '!'"),
        ('<"user%other.org"@local.gov.vn>', "quoted local part containing '@', '%' or '!'"),
        ('<"host!user"@local.gov.vn>', "quoted local part containing '@', '%' or '!'"),
        ("<user@[1.2.3.4]>", "IP address literal as domain"),
        ("<user@[IPv6:::1]>", "IP address literal as domain"),
        ("<user@gоv.vn>", "mixed scripts in domain label"),  # Cyrillic о
        ("<user@sở-у-tế.vn>", "mixed scripts in domain label"),  # Cyrillic у
        ("<user@аррӏе.com>", "domain label confusable with a Latin label"),
        ("<user@xn--gv-fmc.vn>", "mixed scripts in domain label"),  # A-label of "gоv"
        ("<user@XN--GV-FMC.vn>", "mixed scripts in domain label"),
    ],
)
def test_relay_tricks_are_named(text: str, reason: str) -> None:
    assert relay_trick(parse_path(text, smtputf8=True)) == reason


@pytest.mark.parametrize(
    "text",
    [
        "<thanhnn.skhcn@hanoi.gov.vn>",
        "<thanhnn+hop@hanoi.gov.vn>",
        '<"thanh nn"@hanoi.gov.vn>',
        "<Postmaster>",
        "<thành@sở-y-tế.vn>",
        "<u@пример.рф>",  # a genuine all-Cyrillic name with letters Latin lacks
        "<u@東京.jp>",
        "<u@abc東京.jp>",  # Latin + Han is allowed by UTS 39 Highly Restrictive
    ],
)
def test_clean_paths_have_no_relay_trick(text: str) -> None:
    assert relay_trick(parse_path(text, smtputf8=True)) is None


def test_null_path_has_no_relay_trick() -> None:
    assert relay_trick(NULL_PATH) is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        # Built directly (alias tables, forwarding targets): the parser never saw them.
        (ParsedPath("user", "local.gov.vn."), "trailing dot in domain"),
        (ParsedPath("user", "local..gov.vn"), "empty label in domain"),
        (
            ParsedPath("user", "ｌｏｃａｌ.gov.vn"),
            "fullwidth or compatibility characters in domain",
        ),
        (ParsedPath("a" * 65, "x.vn"), "local part too long"),
        (ParsedPath("u", "a." * 127 + "vn"), "domain too long"),
        (ParsedPath("a" * 64, ".".join(["b" * 63] * 3) + ".vn"), "path too long"),
        (ParsedPath("u", "x_y.vn"), "invalid domain: bad domain label 'x_y'"),
    ],
)
def test_relay_trick_rechecks_constructed_paths(path: ParsedPath, reason: str) -> None:
    assert relay_trick(path) == reason


def test_relay_denied_carries_reply() -> None:
    error = RelayDenied("percent hack in local part")
    assert isinstance(error, AddressError)
    assert error.reply == "550 5.7.1 Relaying denied"
    assert error.code == 550
    assert error.detail == "percent hack in local part"


# --- normalise_domain and split_plus -------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("HaNoi.Gov.VN", "hanoi.gov.vn"),
        ("Bộ-Y-Tế.Gov.VN", "xn--b-y-t-s61b7g.gov.vn"),
        ("BỘ-Y-TẾ.gov.vn", "xn--b-y-t-s61b7g.gov.vn"),
        ("bo\u0302\u0323-y-te\u0302\u0301.gov.vn", "xn--b-y-t-s61b7g.gov.vn"),  # NFD input
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008: no ß -> ss mapping
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("xn--b-y-t-s61b7g.gov.vn", "xn--b-y-t-s61b7g.gov.vn"),
        ("[IPv6:2001:DB8::1]", "[ipv6:2001:db8::1]"),
    ],
)
def test_normalise_domain(domain: str, expected: str) -> None:
    assert normalise_domain(domain) == expected


@pytest.mark.parametrize(
    "domain",
    ["", "x.vn.", "x..vn", "ｇｏｖ.vn", "a\u200db.vn", "xn--zz.vn", "[1.2.3]", "a" * 64 + ".vn"],
)
def test_normalise_domain_refuses(domain: str) -> None:
    with pytest.raises(ValueError):
        normalise_domain(domain)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("thanhnn", ("thanhnn", None)),
        ("thanhnn+hop", ("thanhnn", "hop")),
        ("thanhnn+hop+2", ("thanhnn", "hop+2")),
        ("thanhnn+", ("thanhnn", "")),
        ("+hop", ("+hop", None)),
        ("", ("", None)),
    ],
)
def test_split_plus(local: str, expected: tuple[str, str | None]) -> None:
    assert split_plus(local) == expected
