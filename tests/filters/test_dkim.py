"""DKIM: keys (files, modes, dated selectors, rotation), signing of local mail with RSA and
Ed25519, verification by an independent implementation (Perl Mail::DKIM) and by ours, and the
corpus's DKIM vectors."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from filters.dkim_keys import (
    ED25519,
    RSA,
    domain_keys,
    ensure_keys,
    key_record,
    published_keys,
    rotate_keys,
    select_signing_keys,
)
from filters.dkim_sign import DkimSignCheck
from filters.dkim_verify import verify_dkim
from filters.dns import TEMPFAIL_MARK, StaticDns
from filters.pipeline import Direction, MessageContext, Pipeline
from storage.accounts import create_agency, create_domain, find_domain
from storage.models import DkimKey
from storage.store import MailStore
from tests.support.requirements import missing, require_program

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
PERL_VERIFIER = Path(__file__).with_name("verify_dkim.pl")
DOMAIN = "sotest.gov.vn"
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
MESSAGE = (
    "From: Nguyễn Văn A <vana.sotest@sotest.gov.vn>\r\n"
    "To: b@othertest.gov.vn\r\n"
    "Subject: =?utf-8?b?Q8O0bmcgdsSDbg==?=\r\n"
    "Date: Tue, 24 Nov 2026 15:00:00 +0700\r\n"
    "Message-ID: <1@sotest.gov.vn>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Kính gửi các đơn vị,\r\n"
    "  trailing blanks and   inner runs   \r\n"
    "\r\n"
    "\r\n"
).encode()
OUTBOUND = MessageContext(Direction.OUTBOUND, "127.0.0.1", "client", "vana@sotest.gov.vn", ())


def add_domain(session: Session, name: str = DOMAIN) -> int:
    agency = create_agency(session, "test", name.split(".")[0], name)
    assert agency.id is not None
    domain = create_domain(session, "test", name, agency.id)
    assert domain.id is not None
    return domain.id


def dns_of(keys: list[DkimKey], domain: str = DOMAIN) -> dict[str, dict[str, list[str]]]:
    return {f"{k.selector}._domainkey.{domain}": {"TXT": [key_record(k)]} for k in keys}


async def signed_message(mail_store: MailStore, key_dir: Path) -> tuple[bytes, list[DkimKey]]:
    await mail_store.write(add_domain)
    signer = DkimSignCheck(mail_store, key_dir, timedelta(hours=48), clock=lambda: NOW)
    pipeline = Pipeline([signer])
    result = await pipeline.run(MESSAGE, OUTBOUND)
    keys = await mail_store.read(lambda s: domain_keys(s, find_domain(s, DOMAIN).id))  # type: ignore[union-attr, arg-type]
    return result.message, keys


# ---------------------------------------------------------------- keys


async def test_first_keys_are_rsa_and_ed25519_in_private_files(
    mail_store: MailStore, tmp_path: Path
) -> None:
    key_dir = tmp_path / "dkim"
    await mail_store.write(add_domain)
    keys = await mail_store.write(lambda s: ensure_keys(s, "test", DOMAIN, key_dir, NOW))
    assert [(k.selector, k.algorithm) for k in keys] == [("20261124r", RSA), ("20261124e", ED25519)]
    for key in keys:
        path = key_dir / key.private_key_file
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert (key_dir / keys[0].private_key_file).read_bytes().startswith(b"-----BEGIN RSA")
    assert key_record(keys[1]).startswith("v=DKIM1; k=ed25519; p=")
    assert len(key_record(keys[0])) > 380  # 2048-bit SubjectPublicKeyInfo
    again = await mail_store.write(lambda s: ensure_keys(s, "test", DOMAIN, key_dir, NOW))
    assert [k.id for k in again] == [k.id for k in keys]


def key(selector: str, algorithm: str, created: datetime, **extra: object) -> DkimKey:
    return DkimKey(
        id=len(selector),
        domain_id=1,
        selector=selector,
        algorithm=algorithm,
        private_key_file="x",
        public_key="p",
        created_at=created,
        **extra,  # type: ignore[arg-type]
    )


def test_rotation_publishes_first_then_switches_then_retires() -> None:
    delay = timedelta(hours=48)
    created, retire = NOW - timedelta(days=300), NOW + timedelta(days=9)
    old_r = key("20260101r", RSA, created, retire_after=retire)
    old_e = key("20260101e", ED25519, created, retire_after=retire)
    new_r, new_e = key("20261124r", RSA, NOW), key("20261124e", ED25519, NOW)
    keys = [old_r, old_e, new_r, new_e]

    def selectors(moment: datetime) -> tuple[list[str], list[str]]:
        signing = [k.selector for k in select_signing_keys(keys, moment, delay)]
        return signing, [k.selector for k in published_keys(keys, moment)]

    assert selectors(NOW + timedelta(hours=1)) == (
        ["20260101r", "20260101e"],
        ["20260101r", "20260101e", "20261124r", "20261124e"],
    )
    assert selectors(NOW + timedelta(hours=49))[0] == ["20261124r", "20261124e"]
    assert selectors(NOW + timedelta(days=10)) == (
        ["20261124r", "20261124e"],
        ["20261124r", "20261124e"],
    )


def test_a_withdrawn_key_never_signs() -> None:
    leaked = key("20260101r", RSA, NOW - timedelta(days=3), signing=False)
    assert select_signing_keys([leaked], NOW, timedelta(hours=48)) == []


async def test_rotate_keeps_old_selectors_published_for_the_overlap(
    mail_store: MailStore, tmp_path: Path
) -> None:
    key_dir = tmp_path / "dkim"
    await mail_store.write(add_domain)

    def rotate(session: Session) -> list[str]:
        created = rotate_keys(
            session, "test", DOMAIN, key_dir, NOW, timedelta(hours=48), timedelta(days=7)
        )
        return [k.selector for k in created]

    assert await mail_store.write(rotate) == ["20261124rb", "20261124eb"]
    keys = await mail_store.read(lambda s: domain_keys(s, find_domain(s, DOMAIN).id))  # type: ignore[union-attr, arg-type]
    retire = {k.selector: k.retire_after for k in keys}
    assert retire["20261124rb"] is None
    assert retire["20261124r"] is not None
    assert retire["20261124r"].replace(tzinfo=UTC) == NOW + timedelta(hours=48, days=7)


# ---------------------------------------------------------------- signing


async def test_local_mail_gets_both_signatures_that_verify(
    mail_store: MailStore, tmp_path: Path
) -> None:
    signed, keys = await signed_message(mail_store, tmp_path / "dkim")
    assert signed.endswith(MESSAGE)
    header = signed[: len(signed) - len(MESSAGE)].decode()
    assert header.count("DKIM-Signature:") == 2
    assert "a=rsa-sha256" in header and "a=ed25519-sha256" in header
    assert "d=sotest.gov.vn" in header and "h=from : from : to" in header
    results = await verify_dkim(signed, StaticDns(dns_of(keys)))
    assert [(r.result, r.algorithm, r.selector) for r in results] == [
        ("pass", "rsa-sha256", "20261124r"),
        ("pass", "ed25519-sha256", "20261124e"),
    ]


async def test_mail_from_a_domain_that_is_not_local_is_not_signed(
    mail_store: MailStore, tmp_path: Path
) -> None:
    check = DkimSignCheck(mail_store, tmp_path / "dkim", timedelta(hours=48), clock=lambda: NOW)
    message = MESSAGE.replace(b"@sotest.gov.vn>", b"@gmail.com>", 1)
    verdict = await check.check(message, OUTBOUND)
    assert verdict.add_headers == ()
    assert verdict.detail == "not signed: gmail.com is not local"
    two_froms = b"From: a@x.vn, b@y.vn\r\n" + MESSAGE
    assert (await check.check(two_froms, OUTBOUND)).detail == "not signed: 3 From domains"


def perl_has(module: str) -> bool:
    if not shutil.which("perl"):
        return False
    return subprocess.run(["perl", f"-M{module}", "-e1"], capture_output=True).returncode == 0


def perl_verify(message: bytes, key_table: Path) -> list[str]:
    """Mail::DKIM's verdict on each signature, with keys from ``key_table`` (no real DNS)."""
    run = subprocess.run(
        ["perl", str(PERL_VERIFIER), str(key_table)],
        input=message,
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout.decode().splitlines()


async def test_independent_verifier_accepts_our_signatures(
    mail_store: MailStore, tmp_path: Path
) -> None:
    if not await asyncio.to_thread(perl_has, "Mail::DKIM::Verifier"):
        missing("Perl's Mail::DKIM", "libmail-dkim-perl")
    signed, keys = await signed_message(mail_store, tmp_path / "dkim")
    table = tmp_path / "keys.tsv"
    table.write_text("".join(f"{k.selector}._domainkey.{DOMAIN}\t{key_record(k)}\n" for k in keys))
    lines = await asyncio.to_thread(perl_verify, signed, table)
    # Debian 12's Mail::DKIM knows no Ed25519 (opendkim checks that signature, below).
    assert f"pass d={DOMAIN} s=20261124r a=rsa-sha256" in lines
    tampered = signed.replace("Kính gửi".encode(), b"Kinh gui")
    lines = await asyncio.to_thread(perl_verify, tampered, table)
    assert f"fail d={DOMAIN} s=20261124r a=rsa-sha256" in lines


OPENDKIM_HELPER = Path(__file__).with_name("opendkim_in_netns.py")


def opendkim_verify(message: bytes, records: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    """opendkim-testmsg's exit status and complaint, with DNS answered from ``records``."""
    keys = tmp_path / "opendkim-keys.json"
    keys.write_text(json.dumps(records))
    run = subprocess.run(
        ["unshare", "-rnm", sys.executable, str(OPENDKIM_HELPER), str(keys)],
        input=message,
        capture_output=True,
        timeout=60,
    )
    if not run.stdout.startswith(b"rc="):
        pytest.skip(f"cannot give opendkim-testmsg a private DNS: {run.stderr.decode()[-300:]}")
    status, _, complaint = run.stdout.decode().partition("\n")
    return int(status[3:]), complaint.strip()


async def test_opendkim_verifies_each_of_our_signatures_alone(
    mail_store: MailStore, tmp_path: Path
) -> None:
    require_program("opendkim-testmsg", "opendkim-tools")
    require_program("unshare", "util-linux")
    await mail_store.write(add_domain)
    check = DkimSignCheck(mail_store, tmp_path / "dkim", timedelta(hours=48), clock=lambda: NOW)
    verdict = await check.check(MESSAGE, OUTBOUND)
    keys = await mail_store.read(lambda s: domain_keys(s, find_domain(s, DOMAIN).id))  # type: ignore[union-attr, arg-type]
    records = {f"{k.selector}._domainkey.{DOMAIN}": key_record(k) for k in keys}
    assert [f[1].split("a=")[1].split(";")[0] for f in verdict.add_headers] == [RSA, ED25519]
    for name, value in verdict.add_headers:
        one = f"{name}: {value}\r\n".encode() + MESSAGE
        assert await asyncio.to_thread(opendkim_verify, one, records, tmp_path) == (0, "")
        tampered = one.replace(b"inner runs", b"inner ruins")
        status, complaint = await asyncio.to_thread(opendkim_verify, tampered, records, tmp_path)
        assert (status, complaint) == (70, "opendkim-testmsg: dkim_eom(): Bad signature")


# ---------------------------------------------------------------- verification


async def test_verification_failures_are_told_apart(mail_store: MailStore, tmp_path: Path) -> None:
    signed, keys = await signed_message(mail_store, tmp_path / "dkim")
    tampered = signed.replace(b"inner runs", b"inner ruins")
    results = await verify_dkim(tampered, StaticDns(dns_of(keys)))
    assert [r.result for r in results] == ["fail", "fail"]
    assert [r.result for r in await verify_dkim(signed, StaticDns({}))] == [
        "permerror",
        "permerror",
    ]
    broken = StaticDns({f"{k.selector}._domainkey.{DOMAIN}": {"TXT": TEMPFAIL_MARK} for k in keys})
    assert [r.result for r in await verify_dkim(signed, broken)] == ["temperror", "temperror"]
    garbage = b"DKIM-Signature: v=1; d=x.vn; b=;;;\r\nDKIM-Signature: \x00\xff\r\n" + MESSAGE
    assert [r.result for r in await verify_dkim(garbage, StaticDns({}))] == [
        "permerror",
        "permerror",
    ]


def corpus_dns() -> StaticDns:
    path = CORPUS / "dkimpy-testdata" / "dns_txt_records.json"
    if not path.exists():
        pytest.skip(f"test corpus absent: {path}")
    records = json.loads(path.read_text())
    return StaticDns({name: {"TXT": [value.strip()]} for name, value in records.items()})


async def test_corpus_rfc8463_example_verifies_both_signatures() -> None:
    dns = corpus_dns()
    message = (CORPUS / "mimekit/UnitTests/TestData/dkim/rfc8463-example.msg").read_bytes()
    results = await verify_dkim(message, dns)
    assert [(r.result, r.algorithm, r.selector) for r in results] == [
        ("pass", "ed25519-sha256", "brisbane"),
        ("pass", "rsa-sha256", "test"),
    ]


async def test_corpus_gmail_message_verifies_and_fails_when_altered() -> None:
    dns = corpus_dns()
    message = (CORPUS / "mimekit/UnitTests/TestData/dkim/gmail.msg").read_bytes()
    assert [r.result for r in await verify_dkim(message, dns)] == ["pass"]
    altered = message.replace(b"Subject:", b"Subject: [changed]", 1)
    assert [r.result for r in await verify_dkim(altered, dns)] == ["fail"]


async def test_corpus_exim_ed25519_vector() -> None:
    dns = corpus_dns()
    message = (CORPUS / "dkimpy-testdata" / "ed25519test2.msg").read_bytes()
    results = await verify_dkim(message, dns)
    assert [(r.result, r.domain, r.selector) for r in results] == [("pass", "test.ex", "sed")]


def test_key_files_are_not_world_readable_by_default_umask(tmp_path: Path) -> None:
    from filters.dkim_keys import write_private_key

    old = os.umask(0)
    try:
        path = write_private_key(tmp_path / "k", "d.vn/s.key", b"secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_private_key(tmp_path / "k", "d.vn/s.key", b"other")


def test_without_pynacl_rsa_still_signs_and_ed25519_verifies_as_neutral(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dkim

    from filters.dkim_keys import generate_key
    from filters.dkim_sign import SigningKey, sign_message
    from filters.dkim_verify import _verify_one

    real_sign = dkim.sign

    def sign_without_nacl(message: bytes, *args: object, **kwargs: object) -> bytes:
        if kwargs.get("signature_algorithm") == b"ed25519-sha256":
            raise dkim.NaClNotFoundError("pynacl module required for ed25519 signing")
        return real_sign(message, *args, **kwargs)

    monkeypatch.setattr(dkim, "sign", sign_without_nacl)
    rsa, ed = generate_key(RSA), generate_key(ED25519)
    keys = [
        SigningKey(DOMAIN, "r", RSA, rsa.private_file),
        SigningKey(DOMAIN, "e", ED25519, ed.private_file),
    ]
    fields = sign_message(MESSAGE, keys)
    assert [f[0] for f in fields] == ["DKIM-Signature"] and "a=rsa-sha256" in fields[0][1]

    def verify_without_nacl(self: object, idx: int = 0, dnsfunc: object = None) -> bool:
        raise dkim.NaClNotFoundError("pynacl module required for ed25519 signing")

    monkeypatch.setattr(dkim.DKIM, "verify", verify_without_nacl)
    signed = f"{fields[0][0]}: {fields[0][1]}\r\n".encode() + MESSAGE
    assert _verify_one(signed, 0, {})[0] is None
