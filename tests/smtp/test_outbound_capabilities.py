"""The queue against servers with and without DSN, 8BITMIME and SMTPUTF8: NOTIFY/ORCPT passed on
or a ``relayed`` report (RFC 3461 5.2.1/5.2.2), 7-bit conversion (RFC 6152 3) with DKIM signed
again after it (RFC 6376 5.3), and the 5.6.7 bounce of SMTPUTF8 mail (RFC 6531 3.2)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from pathlib import Path

import dkim
import pytest
from sqlmodel import Session, select

from filters.dkim_keys import key_record
from filters.dkim_sign import DkimSignCheck
from filters.pipeline import Direction, MessageContext, render_headers
from mailserver.config import GovmailConfig
from mailserver.delivery.dispatch import Delivery, QueueOptions, store_and_queue
from mailserver.delivery.downconvert import to_seven_bit
from mailserver.delivery.queue import OutboundRecipient, get_entry
from mailserver.delivery.routing import Router
from mailserver.delivery.runner import QueueRunner
from storage.accounts import create_agency, create_domain, create_mailbox
from storage.blobs import BlobStore
from storage.db import open_database
from storage.models import DkimKey, Folder
from storage.models import Message as MessageRow
from storage.schema import upgrade_to_head
from storage.store import MailStore
from tests.smtp.helpers import mime_parts, text_payload
from tests.smtp.scripted_peer import ScriptedPeer
from tests.support.harness import test_config as make_config

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SENDER = "an@sotest.gov.vn"
PLAIN = b"From: an@sotest.gov.vn\r\nTo: x@remote.example\r\nSubject: Cong van\r\n\r\nNoi dung\r\n"
TEXT = "Kính gửi Sở Tài chính,\r\nđề nghị phối hợp thẩm định hồ sơ số 12.\r\n"
MOSTLY_ASCII = "Report for week 12: all systems nominal. Nguyen Van An, So TT&TT. Ha Noi.\r\n" * 3
ATTACHMENT = bytes(range(32, 256)) * 2  # no CR or LF: SMTP is not BINARYMIME
FULL_CAPS = ["SIZE 1000000", "8BITMIME", "SMTPUTF8", "DSN", "PIPELINING"]


class FakeMX:
    async def mx(self, domain: str) -> list[tuple[int, str]]:
        raise AssertionError("static route expected")


@pytest.fixture
async def world(tmp_path: Path, db_url: str) -> AsyncIterator[MailStore]:
    """A store with the sender's local mailbox (where DSNs land)."""
    db = open_database(db_url)
    upgrade_to_head(db)
    store = MailStore(db, BlobStore(tmp_path / "blobs"))
    await store.start()

    def setup(session: Session) -> None:
        agency = create_agency(session, "t", "sotest", "So Test")
        assert agency.id is not None
        create_domain(session, "t", "sotest.gov.vn", agency.id)
        create_mailbox(session, "t", SENDER, "", 10**9)

    await store.write(setup)
    try:
        yield store
    finally:
        await store.close()


def config_for(tmp_path: Path, port: int) -> GovmailConfig:
    return make_config(
        tmp_path / "cfg",
        "sqlite://",
        routing={"routes": [{"domain": "remote.example", "host": "127.0.0.1", "port": port}]},
    )


async def run_against(
    store: MailStore, tmp_path: Path, extensions: list[str], raw: bytes, **queued: object
) -> tuple[ScriptedPeer, int, QueueRunner]:
    """Queue ``raw`` for one remote recipient, deliver it once to a peer offering
    ``extensions``; returns the peer, the entry id and the runner."""
    peer = await ScriptedPeer(extensions).start()
    config = config_for(tmp_path, peer.port)
    runner = QueueRunner(store, config, Router(config.routing.routes, FakeMX()), clock=lambda: T0)
    recipient = OutboundRecipient(
        "x@remote.example",
        notify=str(queued.pop("notify", "")) or None,
        orcpt=queued.pop("orcpt", None),  # type: ignore[arg-type]
    )
    options = QueueOptions(
        sender=str(queued.pop("sender", SENDER)),
        now=T0,
        lifetime=timedelta(days=5),
        **queued,  # type: ignore[arg-type]
    )
    entry_id = await store_and_queue(store, raw, Delivery(remote=[recipient]), options)
    assert entry_id is not None
    try:
        assert await runner.run_once() == 1
    finally:
        await runner.pool.close_all()
        await peer.stop()
    return peer, entry_id, runner


async def inbox(store: MailStore) -> list[Message]:
    def job(session: Session) -> list[str]:
        folder = session.exec(select(Folder).where(Folder.name == "INBOX")).one()
        query = select(MessageRow.blob_sha256).where(MessageRow.folder_id == folder.id)
        return list(session.exec(query))

    return [email.message_from_bytes(store.blobs.read(d)) for d in await store.read(job)]


def status_fields(report: Message) -> list[Message]:
    """The per-message block and the per-recipient blocks of a message/delivery-status part."""
    assert report.get_content_type() == "multipart/report"
    status = mime_parts(report)[1]
    assert status.get_content_type() == "message/delivery-status"
    return mime_parts(status)


# ---------------------------------------------------------------- DSN: pass on, or relayed


async def test_peer_with_dsn_gets_notify_orcpt_ret_envid_and_we_report_nothing(
    world: MailStore, tmp_path: Path
) -> None:
    peer, entry_id, _ = await run_against(
        world,
        tmp_path,
        FULL_CAPS,
        PLAIN,
        notify="SUCCESS,FAILURE",
        orcpt="rfc822;x+2Bfiling@remote.example",
        envid="hs-12",
        ret="HDRS",
    )
    (sent,) = peer.received
    assert sent.mail == f"MAIL FROM:<{SENDER}> SIZE={len(PLAIN)} RET=HDRS ENVID=hs-12"
    assert sent.rcpts == [
        "RCPT TO:<x@remote.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2Bfiling@remote.example"
    ]
    assert sent.data == PLAIN
    entry = await world.read(lambda s: get_entry(s, entry_id))
    assert entry is not None and entry.recipients[0].status == "delivered"
    assert await inbox(world) == []  # the DSN-speaking server reports success itself


async def test_peer_without_dsn_gets_plain_rcpt_and_the_sender_gets_relayed(
    world: MailStore, tmp_path: Path
) -> None:
    peer, _, _ = await run_against(
        world,
        tmp_path,
        ["8BITMIME"],
        PLAIN,
        notify="SUCCESS,FAILURE",
        orcpt="rfc822;x@remote.example",
        envid="hs-13",
        ret="HDRS",
    )
    (sent,) = peer.received
    assert (sent.mail, sent.rcpts) == (f"MAIL FROM:<{SENDER}>", ["RCPT TO:<x@remote.example>"])
    (report,) = await inbox(world)
    assert report["Subject"] == "Successful Mail Delivery Report"
    assert report["To"] == f"<{SENDER}>"
    envelope_block, recipient_block = status_fields(report)
    assert envelope_block["Original-Envelope-Id"] == "hs-13"
    assert recipient_block["Original-Recipient"] == "rfc822; x@remote.example"
    assert recipient_block["Final-Recipient"] == "rfc822; x@remote.example"
    assert recipient_block["Action"] == "relayed"
    assert recipient_block["Status"] == "2.0.0"
    assert recipient_block["Remote-MTA"] == "dns; 127.0.0.1"
    assert recipient_block["Diagnostic-Code"] == "smtp; 250 2.0.0 Ok: queued"
    returned = mime_parts(report)[2]
    assert returned.get_content_type() == "text/rfc822-headers"  # RET=HDRS
    assert "Noi dung" not in text_payload(returned)


async def test_no_success_report_without_notify_success_or_for_a_null_sender(
    world: MailStore, tmp_path: Path
) -> None:
    await run_against(world, tmp_path, ["8BITMIME"], PLAIN, notify="FAILURE")
    await run_against(world, tmp_path, ["8BITMIME"], PLAIN)
    await run_against(world, tmp_path, ["8BITMIME"], PLAIN, notify="SUCCESS", sender="")
    assert await inbox(world) == []


# ---------------------------------------------------------------- 8BITMIME


def eight_bit_message() -> bytes:
    """multipart/mixed: Vietnamese text declared 8bit, a mostly-ASCII text part with no
    Content-Transfer-Encoding field at all (common breakage) and 8-bit octets declared 8bit."""
    parts = [
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + TEXT.encode(),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: attachment;\r\n"
        b' filename="report.txt"\r\n\r\n' + (MOSTLY_ASCII + "Trần Thị Bình\r\n").encode(),
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + ATTACHMENT,
    ]
    body = b"".join(b"--b1\r\n" + part + b"\r\n" for part in parts) + b"--b1--\r\n"
    header = (
        b"From: an@sotest.gov.vn\r\nTo: x@remote.example\r\n"
        b"Subject: =?utf-8?b?VGjhuqltIMSR4buLbmg=?=\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    )
    return header + b"\r\n" + body


def leaf_payloads(raw: bytes) -> list[tuple[str, bytes]]:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return [
        (part.get_content_type(), decoded(part))
        for part in parsed.walk()
        if not part.is_multipart()
    ]


def decoded(part: Message) -> bytes:
    """A leaf part's payload with its Content-Transfer-Encoding undone."""
    payload = part.get_payload(decode=True)
    assert payload is None or isinstance(payload, bytes)
    return payload or b""


async def test_peer_without_8bitmime_gets_7bit_mime_with_the_same_decoded_content(
    world: MailStore, tmp_path: Path
) -> None:
    original = eight_bit_message()
    peer, entry_id, _ = await run_against(world, tmp_path, ["SIZE 1000000", "DSN"], original)
    (sent,) = peer.received
    assert all(b < 128 for b in sent.data)
    assert "BODY=" not in sent.mail and f"SIZE={len(sent.data)}" in sent.mail
    assert leaf_payloads(sent.data) == leaf_payloads(original)
    encodings = [
        part["Content-Transfer-Encoding"]
        for part in email.message_from_bytes(sent.data).walk()
        if not part.is_multipart()
    ]
    # Vietnamese text: base64 (over 1/8 of its octets are 8-bit); mostly-ASCII text: QP.
    assert encodings == ["base64", "quoted-printable", "base64"]
    # Header fields are kept byte for byte; only the 8-bit parts changed.
    assert sent.data.split(b"\r\n\r\n")[0] == original.split(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in sent.data.split(b"\r\n"))
    entry = await world.read(lambda s: get_entry(s, entry_id))
    assert entry is not None and entry.recipients[0].status == "delivered"


async def test_peer_with_8bitmime_gets_the_message_unchanged(
    world: MailStore, tmp_path: Path
) -> None:
    original = eight_bit_message()
    peer, _, _ = await run_against(world, tmp_path, FULL_CAPS, original)
    (sent,) = peer.received
    assert sent.data == original and sent.mail.endswith(" BODY=8BITMIME")


def test_conversion_of_plain_legacy_and_nested_messages() -> None:
    # Not MIME: becomes text/plain, charset from the bytes.
    legacy = "From: a@b\r\nSubject: x\r\n\r\nXin chào\r\n".encode()
    converted = to_seven_bit(legacy)
    parsed = email.message_from_bytes(converted, policy=email.policy.default)
    assert parsed.get_content_charset() == "utf-8"
    assert parsed.get_content().rstrip() == "Xin chào"
    windows = b"From: a@b\r\n\r\nXin ch\xe0o\r\n"
    assert b"charset=unknown-8bit" in to_seven_bit(windows)
    # A forwarded message/rfc822 part: its inner 8-bit body is converted, it stays 7bit itself.
    inner = "From: c@d\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    inner += "Content-Transfer-Encoding: 8bit\r\n\r\nĐã nhận.\r\n"
    outer = (
        'From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n'
        "\r\npreamble é\r\n--b1\r\nContent-Type: message/rfc822\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + inner + "--b1--\r\nepilogue é\r\n"
    ).encode()
    result = to_seven_bit(outer)
    assert all(b < 128 for b in result)
    assert b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n" in result
    forwarded = email.message_from_bytes(result, policy=email.policy.default)
    nested = list(forwarded.walk())[-1]
    assert nested.get_content() == "Đã nhận."  # the CRLF before a delimiter is the delimiter's
    # Hostile nesting: converted down to the depth limit, never a crash.
    deep = b"x\xc3\xa9\r\n"
    for level in range(200):
        deep = (
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
            + deep
            + b"\r\n--b%d--\r\n" % level
        )
    nested_result = to_seven_bit(b"MIME-Version: 1.0\r\n" + deep)
    assert nested_result.count(b"--b0--") == 1
    # 7-bit input comes back as the same object.
    assert to_seven_bit(PLAIN) is PLAIN


async def test_our_dkim_signature_is_made_again_after_conversion(
    world: MailStore, tmp_path: Path
) -> None:
    config = config_for(tmp_path, 1)
    signer = DkimSignCheck(world, config.dkim_key_dir, timedelta(hours=1), clock=lambda: T0)
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = "x@remote.example"
    message["Subject"] = "Ky so"
    message.set_content(TEXT, cte="8bit")
    raw = message.as_bytes().replace(b"\n", b"\r\n")
    context = MessageContext(
        direction=Direction.OUTBOUND,
        peer_ip="127.0.0.1",
        helo="x",
        mail_from=SENDER,
        recipients=("x@remote.example",),
    )
    verdict = await signer.check(raw, context)
    signed = render_headers(verdict.add_headers) + raw
    rows = await world.read(lambda s: list(s.exec(select(DkimKey))))
    records = {f"{k.selector}._domainkey.sotest.gov.vn.".encode(): key_record(k) for k in rows}

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records[name].encode()

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(to_seven_bit(signed), dnsfunc=dns)  # conversion alone breaks it

    peer, _, _ = await run_against(world, tmp_path, ["DSN"], signed)
    (sent,) = peer.received
    assert all(b < 128 for b in sent.data)
    assert sent.data.count(b"DKIM-Signature:") == signed.count(b"DKIM-Signature:")
    assert dkim.verify(sent.data, dnsfunc=dns)


# ---------------------------------------------------------------- SMTPUTF8


async def test_smtputf8_message_to_a_server_without_it_bounces_with_5_6_7(
    world: MailStore, tmp_path: Path
) -> None:
    raw = "From: an@sotest.gov.vn\r\nTo: x@remote.example\r\nSubject: Thẩm định\r\n\r\nx\r\n"
    peer, entry_id, _ = await run_against(
        world, tmp_path, ["8BITMIME", "DSN"], raw.encode(), smtputf8=True
    )
    assert peer.received == []
    entry = await world.read(lambda s: get_entry(s, entry_id))
    assert entry is not None
    assert (entry.recipients[0].status, entry.recipients[0].last_reply) == (
        "failed",
        "553 5.6.7 Remote server does not support SMTPUTF8",
    )
    (bounce,) = await inbox(world)
    (_, recipient_block) = status_fields(bounce)
    assert (recipient_block["Action"], recipient_block["Status"]) == ("failed", "5.6.7")


async def test_smtputf8_message_to_a_server_with_it_is_sent_with_the_parameter(
    world: MailStore, tmp_path: Path
) -> None:
    raw = "From: an@sotest.gov.vn\r\nTo: x@remote.example\r\nSubject: Thẩm định\r\n\r\nx\r\n"
    peer, _, _ = await run_against(world, tmp_path, FULL_CAPS, raw.encode(), smtputf8=True)
    (sent,) = peer.received
    assert sent.mail.endswith(" BODY=8BITMIME SMTPUTF8") and sent.data == raw.encode()


async def test_legacy_raw_8bit_header_without_smtputf8_is_sent_as_it_is(
    world: MailStore, tmp_path: Path
) -> None:
    raw = b"From: an@sotest.gov.vn\r\nTo: x@remote.example\r\nSubject: Th\xe0nh\r\n\r\nx\r\n"
    peer, _, _ = await run_against(world, tmp_path, ["DSN"], raw)
    (sent,) = peer.received
    assert sent.data == raw  # nothing in the body to convert; the header is not guessed at
