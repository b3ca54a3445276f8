"""DMARC (RFC 7489): records, organizational domains, alignment and outcomes on a table."""

from __future__ import annotations

import pytest

from filters.dmarc import (
    DmarcRecord,
    DmarcResult,
    Policy,
    aligned,
    evaluate_dmarc,
    organizational_domain,
    parse_dmarc_record,
)
from filters.dns import TEMPFAIL_MARK, StaticDns


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("sotest.gov.vn", "sotest.gov.vn"),
        ("mail.skhcn.hanoi.gov.vn", "hanoi.gov.vn"),
        ("gov.vn", "gov.vn"),
        ("mail.example.com", "example.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("EXAMPLE.COM.", "example.com"),
    ],
)
def test_organizational_domain(domain: str, org: str) -> None:
    assert organizational_domain(domain) == org


def test_extra_public_suffixes_extend_the_list() -> None:
    assert organizational_domain("a.b.tinh.local") == "tinh.local"
    assert organizational_domain("a.b.tinh.local", ["tinh.local"]) == "b.tinh.local"


def test_record_parsing() -> None:
    assert parse_dmarc_record("v=DMARC1; p=reject; sp=none; adkim=s; aspf=s; pct=50") == (
        DmarcRecord(Policy.REJECT, Policy.NONE, True, True, 50)
    )
    assert parse_dmarc_record("v=DMARC1;p=quarantine") == DmarcRecord(Policy.QUARANTINE)
    assert parse_dmarc_record("v=DMARC1; p=bogus; rua=mailto:x@y.vn") == DmarcRecord(Policy.NONE)
    for bad in ("v=DMARC1; p=bogus", "v=spf1 -all", "p=reject; v=DMARC1", "v=DMARC2; p=reject", ""):
        assert parse_dmarc_record(bad) is None, bad


@pytest.mark.parametrize(
    ("identifier", "from_domain", "strict", "expected"),
    [
        ("sotest.gov.vn", "sotest.gov.vn", True, True),
        ("mail.sotest.gov.vn", "sotest.gov.vn", True, False),
        ("mail.sotest.gov.vn", "sotest.gov.vn", False, True),
        ("othertest.gov.vn", "sotest.gov.vn", False, False),  # gov.vn is a public suffix
        ("bounce.example.com", "news.example.com", False, True),
    ],
)
def test_alignment(identifier: str, from_domain: str, strict: bool, expected: bool) -> None:
    assert aligned(identifier, from_domain, strict) is expected


DNS = StaticDns(
    {
        "_dmarc.reject.vn": {"TXT": ["v=DMARC1; p=reject"]},
        "_dmarc.strict.vn": {"TXT": ["v=DMARC1; p=quarantine; adkim=s; aspf=s"]},
        "_dmarc.parent.vn": {"TXT": ["v=DMARC1; p=reject; sp=quarantine"]},
        "_dmarc.half.vn": {"TXT": ["v=DMARC1; p=reject; pct=50"]},
        "_dmarc.two.vn": {"TXT": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]},
        "_dmarc.temp.vn": {"TXT": TEMPFAIL_MARK},
        "_dmarc.junk.vn": {"TXT": ["v=DMARC1; p=rejectx"]},
    }
)

CASES = [
    # (From domain, SPF pass domain, DKIM pass domains, sample, result, policy)
    ("reject.vn", "reject.vn", [], 0.0, DmarcResult.PASS, Policy.REJECT),
    ("reject.vn", "bounce.reject.vn", [], 0.0, DmarcResult.PASS, Policy.REJECT),  # relaxed
    ("reject.vn", None, ["reject.vn"], 0.0, DmarcResult.PASS, Policy.REJECT),
    ("reject.vn", "other.vn", ["other.vn"], 0.0, DmarcResult.FAIL, Policy.REJECT),  # unaligned
    ("reject.vn", None, [], 0.0, DmarcResult.FAIL, Policy.REJECT),
    ("strict.vn", "mail.strict.vn", ["mail.strict.vn"], 0.0, DmarcResult.FAIL, Policy.QUARANTINE),
    ("strict.vn", None, ["strict.vn"], 0.0, DmarcResult.PASS, Policy.QUARANTINE),
    ("sub.parent.vn", None, [], 0.0, DmarcResult.FAIL, Policy.QUARANTINE),  # sp= inherited
    ("parent.vn", None, [], 0.0, DmarcResult.FAIL, Policy.REJECT),
    ("nopolicy.vn", None, [], 0.0, DmarcResult.NONE, Policy.NONE),
    ("two.vn", None, [], 0.0, DmarcResult.NONE, Policy.NONE),  # RFC 7489 6.6.3
    ("junk.vn", None, [], 0.0, DmarcResult.NONE, Policy.NONE),
    ("temp.vn", None, [], 0.0, DmarcResult.TEMPERROR, Policy.NONE),
]


@pytest.mark.parametrize(("domain", "spf", "dkim", "sample", "result", "policy"), CASES)
async def test_dmarc_outcome_table(
    domain: str,
    spf: str | None,
    dkim: list[str],
    sample: float,
    result: DmarcResult,
    policy: Policy,
) -> None:
    outcome = await evaluate_dmarc(DNS, domain, spf, dkim, sample=lambda: sample)
    assert (outcome.result, outcome.policy) == (result, policy), outcome.detail


async def test_pct_samples_messages_out_of_the_policy() -> None:
    kept = await evaluate_dmarc(DNS, "half.vn", None, [], sample=lambda: 0.2)
    spared = await evaluate_dmarc(DNS, "half.vn", None, [], sample=lambda: 0.7)
    assert (kept.result, kept.applied) == (DmarcResult.FAIL, True)
    assert (spared.result, spared.applied) == (DmarcResult.FAIL, False)
