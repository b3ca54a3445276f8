"""The inbound ``authentication`` check: one Authentication-Results, forged ones removed,
spoofing of local domains refused, DMARC policies enforced, ARC from trusted forwarders."""

from __future__ import annotations

import pytest

from filters.authentication import AuthenticationCheck
from filters.dkim_keys import ED25519, RSA, KeyMaterial, generate_key
from filters.dkim_sign import SigningKey, sign_message
from filters.dns import TEMPFAIL_MARK, StaticDns
from filters.pipeline import Action, Direction, MessageContext, Pipeline

AUTHSERV = "mail.sotest.gov.vn"
LOCAL = {"sotest.gov.vn"}
RSA_KEY: KeyMaterial = generate_key(RSA)
ED_KEY: KeyMaterial = generate_key(ED25519)
LIST_KEY: KeyMaterial = generate_key(RSA)

Table = dict[str, dict[str, list[str] | str]]
BODY = (
    b"Subject: Cong van so 12\r\nTo: b@sotest.gov.vn\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0700\r\n\r\nNoi dung.\r\n"
)


def base_dns(extra: dict[str, dict[str, list[str] | str]] | None = None) -> Table:
    table: dict[str, dict[str, list[str] | str]] = {
        "remote.vn": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
        "_dmarc.remote.vn": {"TXT": ["v=DMARC1; p=reject"]},
        "quarantine.vn": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
        "_dmarc.quarantine.vn": {"TXT": ["v=DMARC1; p=quarantine"]},
        "relaxed.vn": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
        "r1._domainkey.remote.vn": {"TXT": [f"v=DKIM1; k=rsa; p={RSA_KEY.public_key}"]},
        "e1._domainkey.remote.vn": {"TXT": [f"v=DKIM1; k=ed25519; p={ED_KEY.public_key}"]},
        "arc._domainkey.lists.example.org": {"TXT": [f"v=DKIM1; k=rsa; p={LIST_KEY.public_key}"]},
        "sotest.gov.vn": {"TXT": ["v=spf1 ip4:203.0.113.10 -all"]},
    }
    table.update(extra or {})
    return table


async def is_local(domain: str) -> bool:
    return domain in LOCAL


def checker(table: Table | None = None, **options: object) -> AuthenticationCheck:
    return AuthenticationCheck(
        StaticDns(table or base_dns()),
        AUTHSERV,
        is_local,
        **options,  # type: ignore[arg-type]
    )


def context(ip: str, mail_from: str, helo: str = "mx.remote.vn") -> MessageContext:
    return MessageContext(Direction.INBOUND, ip, helo, mail_from, ("b@sotest.gov.vn",))


def from_remote(domain: str = "remote.vn", sign: bool = True) -> bytes:
    message = f"From: A <a@{domain}>\r\n".encode() + BODY
    if not sign:
        return message
    keys = [
        SigningKey(domain, "r1", RSA, RSA_KEY.private_file),
        SigningKey(domain, "e1", ED25519, ED_KEY.private_file),
    ]
    fields = sign_message(message, keys)
    return b"".join(f"{n}: {v}\r\n".encode() for n, v in fields) + message


def auth_results(message: bytes) -> list[bytes]:
    header = message.split(b"\r\n\r\n", 1)[0]
    unfolded = header.replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
    return [
        line
        for line in unfolded.split(b"\r\n")
        if line.lower().startswith(b"authentication-results:")
    ]


async def test_pass_everything_and_the_header_says_so() -> None:
    message = from_remote()
    result = await Pipeline([checker()]).run(message, context("192.0.2.7", "a@remote.vn"))
    assert result.action is Action.ACCEPT
    signature_b = [v.split("b=")[-1][:12] for v in message.decode().split("DKIM-Signature:")[1:]]
    assert auth_results(result.message) == [
        (
            f"Authentication-Results: {AUTHSERV}; spf=pass smtp.mailfrom=a@remote.vn;"
            f" dkim=pass header.d=remote.vn header.s=r1 header.a=rsa-sha256"
            f" header.b={signature_b[0].strip()};"
            f" dkim=pass header.d=remote.vn header.s=e1 header.a=ed25519-sha256"
            f" header.b={signature_b[1].strip()};"
            " arc=none; dmarc=pass (p=reject) header.from=remote.vn"
        ).encode()
    ]


async def test_forged_authentication_results_from_outside_are_removed() -> None:
    forged = (
        f"Authentication-Results: {AUTHSERV}; dkim=pass header.d=sotest.gov.vn\r\n"
        "Authentication-Results: other.example;\r\n\tdmarc=pass\r\n"
    ).encode()
    message = forged + from_remote(sign=False)
    result = await Pipeline([checker()]).run(message, context("198.51.100.9", "a@relaxed.vn"))
    headers = auth_results(result.message)
    assert headers == [
        f"Authentication-Results: {AUTHSERV}; spf=fail smtp.mailfrom=a@relaxed.vn; dkim=none;"
        " arc=none; dmarc=fail (p=reject) header.from=remote.vn".encode()
    ]
    assert result.action is Action.REJECT


async def test_spoofed_local_domain_from_outside_is_refused() -> None:
    message = b"From: Giam doc <giamdoc@sotest.gov.vn>\r\n" + BODY
    result = await Pipeline([checker()]).run(message, context("198.51.100.9", "x@evil.example"))
    assert result.action is Action.REJECT
    assert result.reply == (
        "550 5.7.1 From claims sotest.gov.vn, a domain of this server, "
        "but the message fails authentication (DMARC)"
    )


async def test_local_domain_passes_with_aligned_spf() -> None:
    message = b"From: Giam doc <giamdoc@sotest.gov.vn>\r\n" + BODY
    check = checker()
    verdict = await check.check(message, context("203.0.113.10", "bounce@sotest.gov.vn"))
    assert verdict.action is Action.ACCEPT


async def test_local_domain_with_unverifiable_sender_is_tempfailed() -> None:
    table = base_dns({"evil.example": {"TXT": TEMPFAIL_MARK}})
    message = b"From: giamdoc@sotest.gov.vn\r\n" + BODY
    verdict = await checker(table).check(message, context("198.51.100.9", "x@evil.example"))
    assert (verdict.action, verdict.reply) == (
        Action.TEMPFAIL,
        "451 4.7.1 Cannot verify the sender now, try again later",
    )


@pytest.mark.parametrize(
    ("domain", "enforcement", "expected"),
    [
        ("remote.vn", "reject", Action.REJECT),
        ("remote.vn", "quarantine", Action.JUNK),
        ("remote.vn", "none", Action.ACCEPT),
        ("quarantine.vn", "reject", Action.JUNK),
        ("quarantine.vn", "none", Action.ACCEPT),
        ("relaxed.vn", "reject", Action.ACCEPT),  # no DMARC record: result none
    ],
)
async def test_dmarc_policy_with_configured_enforcement(
    domain: str, enforcement: str, expected: Action
) -> None:
    message = from_remote(domain, sign=False)
    check = checker(enforcement=enforcement)
    verdict = await check.check(message, context("198.51.100.9", f"a@{domain}"))
    assert verdict.action is expected, verdict.detail
    if expected is Action.REJECT:
        assert verdict.reply == (
            "550 5.7.1 Rejected by the DMARC policy of remote.vn: no aligned SPF or DKIM pass"
        )


async def test_multiple_from_domains_claiming_a_local_one_are_refused() -> None:
    message = b"From: a@remote.vn, giamdoc@sotest.gov.vn\r\n" + BODY
    verdict = await checker().check(message, context("192.0.2.7", "a@remote.vn"))
    assert verdict.action is Action.REJECT
    assert "dmarc=permerror" in verdict.detail


async def test_hostile_envelope_values_cannot_inject_header_lines() -> None:
    message = from_remote(sign=False)
    ctx = context("192.0.2.7", "a b;\r\nX-Evil: 1@remote.vn", helo="x\r\nX-Evil: 2")
    verdict = await checker().check(message, ctx)
    value = verdict.add_headers[0][1]
    assert "X-Evil" not in value
    assert value.startswith(f"{AUTHSERV};\r\n\tspf=")
    assert all(line.startswith("\t") for line in value.split("\r\n")[1:])


async def test_outbound_mail_is_not_checked() -> None:
    ctx = MessageContext(Direction.OUTBOUND, "127.0.0.1", "c", "giamdoc@sotest.gov.vn", ())
    verdict = await checker().check(b"From: giamdoc@sotest.gov.vn\r\n" + BODY, ctx)
    assert (verdict.action, verdict.add_headers) == (Action.ACCEPT, ())


async def test_arc_from_a_trusted_forwarder_overrides_a_dmarc_failure() -> None:
    import authres  # noqa: F401  (dkimpy needs it to ARC-sign; a test dependency)
    import dkim

    original = from_remote()
    # The list rewrites the subject (breaking DKIM), records what it saw, and seals.
    modified = original.replace(b"Subject: Cong van", b"Subject: [ds] Cong van")
    seen = (
        b"Authentication-Results: lists.example.org; spf=pass smtp.mailfrom=a@remote.vn;"
        b" dkim=pass header.d=remote.vn; dmarc=pass header.from=remote.vn\r\n"
    )
    sealed_input = seen + modified
    seal = dkim.arc_sign(
        sealed_input, b"arc", b"lists.example.org", LIST_KEY.private_file, b"lists.example.org"
    )
    forwarded = b"".join(seal) + sealed_input
    ctx = context("198.51.100.50", "list-bounces@lists.example.org")
    untrusted = await checker().check(forwarded, ctx)
    assert untrusted.action is Action.REJECT
    assert "arc=pass" in untrusted.detail and "dmarc=fail" in untrusted.detail
    trusted = await checker(trusted_arc_sealers=["lists.example.org"]).check(forwarded, ctx)
    assert trusted.action is Action.ACCEPT
    assert "arc=pass" in trusted.add_headers[0][1]
    broken = forwarded.replace(b"Noi dung.", b"Noi dung khac.")
    tampered = await checker(trusted_arc_sealers=["lists.example.org"]).check(broken, ctx)
    assert tampered.action is Action.REJECT
    assert "arc=fail" in tampered.detail


# --- identities that claim a local domain beyond From (issue 18) -------------------------------


async def test_envelope_sender_in_a_local_domain_from_outside_is_refused() -> None:
    message = from_remote(sign=False)
    verdict = await checker().check(message, context("198.51.100.9", "giamdoc@sotest.gov.vn"))
    assert (verdict.action, verdict.reply) == (
        Action.REJECT,
        "550 5.7.1 MAIL FROM claims sotest.gov.vn, a domain of this server, "
        "but the message fails authentication (DMARC)",
    )


async def test_envelope_sender_in_a_local_domain_passes_from_its_own_servers() -> None:
    message = b"From: Giam doc <giamdoc@sotest.gov.vn>\r\n" + BODY
    verdict = await checker().check(message, context("203.0.113.10", "giamdoc@sotest.gov.vn"))
    assert verdict.action is Action.ACCEPT


async def test_local_sender_field_from_outside_is_refused() -> None:
    message = b"Sender: giamdoc@sotest.gov.vn\r\n" + from_remote()
    verdict = await checker().check(message, context("192.0.2.7", "a@remote.vn"))
    assert (verdict.action, verdict.reply) == (
        Action.REJECT,
        "550 5.7.1 Sender claims sotest.gov.vn, a domain of this server, "
        "but the message fails authentication (DMARC)",
    )


async def test_sender_field_of_the_signing_domain_passes() -> None:
    message = from_remote()
    with_sender = message.replace(
        b"From: A <a@remote.vn>", b"Sender: b@remote.vn\r\nFrom: A <a@remote.vn>"
    )
    verdict = await checker().check(with_sender, context("192.0.2.7", "a@remote.vn"))
    assert verdict.action is Action.ACCEPT, verdict.detail


async def test_message_without_from_is_refused() -> None:
    verdict = await checker().check(BODY, context("192.0.2.7", "a@remote.vn"))
    assert (verdict.action, verdict.reply) == (
        Action.REJECT,
        "550 5.6.0 The message has no From field (RFC 5322 3.6)",
    )


async def test_bounce_with_null_sender_is_not_a_local_claim() -> None:
    message = from_remote(sign=False)
    verdict = await checker().check(message, context("192.0.2.7", ""))
    assert verdict.action is Action.REJECT  # remote.vn's own p=reject, not a local claim
    assert verdict.reply is not None and "remote.vn" in verdict.reply


async def test_unquoted_local_address_before_an_outside_one_is_a_local_claim() -> None:
    # Read as two From addresses (one local): refused, where a client would show the first as
    # the display name of the second.
    message = b"From: giamdoc@sotest.gov.vn <x@remote.vn>\r\n" + BODY
    verdict = await checker().check(message, context("192.0.2.7", "x@remote.vn"))
    assert verdict.action is Action.REJECT
    assert verdict.reply is not None and "From claims sotest.gov.vn" in verdict.reply
