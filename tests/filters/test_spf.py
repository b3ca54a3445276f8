"""SPF (RFC 7208) outcomes on a table of cases over a static DNS."""

from __future__ import annotations

import pytest

from filters.dns import TEMPFAIL_MARK, StaticDns
from filters.spf import SpfResult, check_host

DNS = StaticDns(
    {
        "pass.vn": {"TXT": ["v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all", "other text"]},
        "soft.vn": {"TXT": ["v=spf1 ip4:192.0.2.1 ~all"]},
        "neutral.vn": {"TXT": ["v=spf1 ?all"]},
        "nothing.vn": {"TXT": ["google-site-verification=abc"]},
        "temp.vn": {"TXT": TEMPFAIL_MARK},
        "badmech.vn": {"TXT": ["v=spf1 foo:bar -all"]},
        "twice.vn": {"TXT": ["v=spf1 -all", "v=spf1 +all"]},
        "include.vn": {"TXT": ["v=spf1 include:pass.vn -all"]},
        "include-none.vn": {"TXT": ["v=spf1 include:nothing.vn -all"]},
        "include-temp.vn": {"TXT": ["v=spf1 include:temp.vn -all"]},
        "amx.vn": {"TXT": ["v=spf1 a mx -all"], "A": ["203.0.113.7"], "MX": ["10 mx.amx.vn"]},
        "mx.amx.vn": {"A": ["203.0.113.8"]},
        "cidr.vn": {"TXT": ["v=spf1 a:hosts.cidr.vn/28 -all"]},
        "hosts.cidr.vn": {"A": ["198.51.100.16"]},
        "redirect.vn": {"TXT": ["v=spf1 redirect=soft.vn"]},
        "redirect-none.vn": {"TXT": ["v=spf1 redirect=nothing.vn"]},
        "loop.vn": {"TXT": ["v=spf1 include:loop.vn -all"]},
        "void.vn": {"TXT": ["v=spf1 a:x1.void.vn a:x2.void.vn a:x3.void.vn -all"]},
        "macro.vn": {"TXT": ["v=spf1 exists:%{ir}.%{l}._spf.%{d} -all"]},
        "5.2.0.192.alice._spf.macro.vn": {"A": ["127.0.0.2"]},
        "badcidr.vn": {"TXT": ["v=spf1 ip4:192.0.2.0/33 -all"]},
        "dupredirect.vn": {"TXT": ["v=spf1 redirect=pass.vn redirect=soft.vn"]},
        "modifier.vn": {"TXT": ["v=spf1 unknown-mod=x ip4:192.0.2.9 -all"]},
        "helo.pass.vn": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
    }
)

CASES = [
    # (client ip, MAIL FROM, HELO, expected result)
    ("192.0.2.5", "a@pass.vn", "h", SpfResult.PASS),
    ("198.51.100.1", "a@pass.vn", "h", SpfResult.FAIL),
    ("2001:db8::1", "a@pass.vn", "h", SpfResult.PASS),
    ("::ffff:192.0.2.5", "a@pass.vn", "h", SpfResult.PASS),  # IPv4-mapped counts as IPv4
    ("198.51.100.1", "a@soft.vn", "h", SpfResult.SOFTFAIL),
    ("198.51.100.1", "a@neutral.vn", "h", SpfResult.NEUTRAL),
    ("198.51.100.1", "a@nothing.vn", "h", SpfResult.NONE),
    ("198.51.100.1", "a@unknown-domain.vn", "h", SpfResult.NONE),
    ("198.51.100.1", "a@localhost", "h", SpfResult.NONE),  # not a FQDN (RFC 7208 4.3)
    ("198.51.100.1", "a@temp.vn", "h", SpfResult.TEMPERROR),
    ("198.51.100.1", "a@badmech.vn", "h", SpfResult.PERMERROR),
    ("198.51.100.1", "a@twice.vn", "h", SpfResult.PERMERROR),
    ("192.0.2.5", "a@include.vn", "h", SpfResult.PASS),
    ("198.51.100.1", "a@include.vn", "h", SpfResult.FAIL),
    ("198.51.100.1", "a@include-none.vn", "h", SpfResult.PERMERROR),  # RFC 7208 5.2
    ("198.51.100.1", "a@include-temp.vn", "h", SpfResult.TEMPERROR),
    ("203.0.113.7", "a@amx.vn", "h", SpfResult.PASS),
    ("203.0.113.8", "a@amx.vn", "h", SpfResult.PASS),
    ("203.0.113.9", "a@amx.vn", "h", SpfResult.FAIL),
    ("198.51.100.30", "a@cidr.vn", "h", SpfResult.PASS),
    ("198.51.100.32", "a@cidr.vn", "h", SpfResult.FAIL),
    ("198.51.100.1", "a@redirect.vn", "h", SpfResult.SOFTFAIL),
    ("198.51.100.1", "a@redirect-none.vn", "h", SpfResult.PERMERROR),  # RFC 7208 6.1
    ("198.51.100.1", "a@loop.vn", "h", SpfResult.PERMERROR),  # more than 10 lookups
    ("198.51.100.1", "a@void.vn", "h", SpfResult.PERMERROR),  # more than 2 void lookups
    ("192.0.2.5", "alice@macro.vn", "h", SpfResult.PASS),
    ("192.0.2.5", "bob@macro.vn", "h", SpfResult.FAIL),
    ("192.0.2.5", "a@badcidr.vn", "h", SpfResult.PERMERROR),
    ("192.0.2.5", "a@dupredirect.vn", "h", SpfResult.PERMERROR),
    ("192.0.2.9", "a@modifier.vn", "h", SpfResult.PASS),  # unknown modifiers are ignored
    ("192.0.2.5", "", "helo.pass.vn", SpfResult.PASS),  # null sender: postmaster@HELO
    ("not-an-ip", "a@pass.vn", "h", SpfResult.NONE),
]


@pytest.mark.parametrize(("ip", "mail_from", "helo", "expected"), CASES)
async def test_spf_result_table(ip: str, mail_from: str, helo: str, expected: SpfResult) -> None:
    outcome = await check_host(DNS, ip, mail_from, helo)
    assert outcome.result is expected, outcome.detail


async def test_null_sender_is_checked_against_the_helo_domain() -> None:
    outcome = await check_host(DNS, "192.0.2.5", "", "HELO.pass.vn.")
    assert (outcome.result, outcome.domain) == (SpfResult.PASS, "helo.pass.vn")


async def test_hostile_records_do_not_crash() -> None:
    hostile = StaticDns(
        {
            "h.vn": {"TXT": ["v=spf1 exists:%{z} -all"]},
            "h2.vn": {"TXT": ["v=spf1 a:% -all"]},
            "h3.vn": {"TXT": ["v=spf1 ip4: ip6:zz -all"]},
            "h4.vn": {"TXT": ["v=spf1 " + "a:x.vn " * 200 + "-all"]},
            "x.vn": {"A": ["10.0.0.1"]},
        }
    )
    for domain in ("h.vn", "h2.vn", "h3.vn", "h4.vn"):
        outcome = await check_host(hostile, "192.0.2.1", f"u@{domain}", "h")
        assert outcome.result is SpfResult.PERMERROR, (domain, outcome)
