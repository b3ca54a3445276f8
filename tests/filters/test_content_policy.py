"""Attachment policy, the clamd client (against a small INSTREAM server), and per-mailbox
allow and block lists of senders."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest
from sqlmodel import Session

from filters.antivirus import AntivirusCheck, ClamdClient, ClamdError, parse_clamd_reply
from filters.attachments import AttachmentPolicyCheck, extension, find_blocked_attachment
from filters.pipeline import Action, Direction, MessageContext, Pipeline, Verdict
from filters.sender_lists import SenderListCheck
from mailserver.filter_config import DEFAULT_BLOCKED_EXTENSIONS, MACRO_EXTENSIONS
from storage.accounts import create_agency, create_domain, create_mailbox
from storage.models import SenderRuleKind
from storage.sender_rules import normalise_pattern, remove_sender_rule, set_sender_rule
from storage.store import MailStore
from tests.filters.conftest import free_port

VBS, SCR = ".vbs", ".scr"
NESTED_HEADER = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
CTX = MessageContext(Direction.INBOUND, "192.0.2.1", "mx", "a@x.vn", ("u@sotest.gov.vn",))


def with_attachment(disposition: str, content_type: str = "application/octet-stream") -> bytes:
    return (
        "From: a@x.vn\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nXem tệp đính kèm.\r\n"
        f"--b\r\nContent-Type: {content_type}\r\nContent-Disposition: {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("disposition", "content_type", "blocked"),
    [
        ('attachment; filename="setup.exe"', "application/octet-stream", ("setup.exe", ".exe")),
        ('attachment; filename="hoadon.pdf.exe"', "application/pdf", ("hoadon.pdf.exe", ".exe")),
        ('attachment; filename="run.JS. "', "text/plain", ("run.JS.", ".js")),
        (
            "attachment; filename*=utf-8''b%C3%A1o%20c%C3%A1o.vbs",
            "text/plain",
            ("báo cáo.vbs", ".vbs"),
        ),
        (
            'attachment; filename="=?utf-8?b?dMOgaSBsaeG7h3Uuc2Ny?="',
            "image/png",
            ("tài liệu.scr", ".scr"),
        ),
        ("attachment", 'application/octet-stream; name="x.bat"', ("x.bat", ".bat")),
        ("attachment", "application/x-msdownload", ("application/x-msdownload",) * 2),
        ('attachment; filename="baocao.docm"', "application/octet-stream", None),
        ('attachment; filename="baocao.pdf"', "application/pdf", None),
        ('attachment; filename="no-extension"', "application/octet-stream", None),
    ],
)
def test_blocked_attachments(
    disposition: str, content_type: str, blocked: tuple[str, str] | None
) -> None:
    found = find_blocked_attachment(
        with_attachment(disposition, content_type), DEFAULT_BLOCKED_EXTENSIONS
    )
    assert found == blocked


def test_macro_documents_are_blocked_only_when_configured() -> None:
    message = with_attachment('attachment; filename="baocao.xlsm"')
    assert find_blocked_attachment(message, DEFAULT_BLOCKED_EXTENSIONS) is None
    blocked = DEFAULT_BLOCKED_EXTENSIONS + MACRO_EXTENSIONS
    assert find_blocked_attachment(message, blocked) == ("baocao.xlsm", ".xlsm")


def test_attachments_inside_attached_messages_count() -> None:
    inner = with_attachment('attachment; filename="virus.exe"').decode()
    outer = (
        "From: a@x.vn\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
        f"--o\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--o--\r\n"
    ).encode()
    assert find_blocked_attachment(outer, ["exe"]) == ("virus.exe", ".exe")


@pytest.mark.parametrize(
    ("name", "ext"),
    [("a.exe", "exe"), ("a.exe.", "exe"), ("a.exe \t", "exe"), ("C:\\dir\\a.Bat", "bat"),
     ("noext", ""), (".bashrc", "bashrc"), ("a.tar.gz", "gz")],
)  # fmt: skip
def test_extension_as_windows_sees_it(name: str, ext: str) -> None:
    assert extension(name) == ext


async def test_refusal_names_the_file_and_hostile_mime_does_not_crash() -> None:
    check = AttachmentPolicyCheck(DEFAULT_BLOCKED_EXTENSIONS)
    name = 'attachment; filename="Quy\\"et dinh.exe"'
    verdict = await check.check(with_attachment(name), CTX)
    assert verdict.action is Action.REJECT
    assert verdict.reply == (
        '552 5.7.0 Message refused: attachment "Quy\'et dinh.exe" has a blocked type (.exe);'
        " executables and scripts are not accepted, send documents instead"
    )
    for hostile in (
        b"",
        b"\x00\xff" * 1000,
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n" * 50,
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
        + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 500,
    ):
        assert (await check.check(hostile, CTX)).action is Action.ACCEPT


# ---------------------------------------------------------------- clamd

EICAR_SIGNATURE = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


async def fake_clamd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A clamd that knows one signature (EICAR) and speaks INSTREAM as clamd(8) describes."""
    command = await reader.readuntil(b"\0")
    assert command == b"zINSTREAM\0"
    data = b""
    while True:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        if size == 0:
            break
        data += await reader.readexactly(size)
    if b"BROKEN" in data:
        writer.write(b"INSTREAM size limit exceeded. ERROR\0")
    elif EICAR_SIGNATURE in data:
        writer.write(b"stream: Win.Test.EICAR_HDB-1 FOUND\0")
    else:
        writer.write(b"stream: OK\0")
    await writer.drain()
    writer.close()


@pytest.fixture
async def clamd_address() -> AsyncIterator[str]:
    server = await asyncio.start_server(fake_clamd, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"127.0.0.1:{port}"


async def test_infected_message_is_refused(clamd_address: str) -> None:
    check = AntivirusCheck(ClamdClient(clamd_address, 5.0), 1024 * 1024, "tempfail")
    message = b"Subject: x\r\n\r\n" + EICAR_SIGNATURE + b"\r\n" + b"padding " * 20000
    verdict = await check.check(message, CTX)
    assert (verdict.action, verdict.reply) == (
        Action.REJECT,
        "550 5.7.1 Message refused: it contains a virus (Win.Test.EICAR_HDB-1)",
    )


async def test_clean_message_passes_with_a_status_header(clamd_address: str) -> None:
    check = AntivirusCheck(ClamdClient(clamd_address, 5.0), 1024 * 1024, "tempfail")
    message = b"X-Virus-Status: clean\r\nSubject: x\r\n\r\nhello\r\n"
    result = await Pipeline([check]).run(message, CTX)
    assert result.action is Action.ACCEPT
    assert result.message == b"X-Virus-Status: clean\r\nSubject: x\r\n\r\nhello\r\n"


async def test_clamd_errors_and_absence_follow_the_failure_policy(clamd_address: str) -> None:
    broken = AntivirusCheck(ClamdClient(clamd_address, 5.0), 1024, "tempfail")
    verdict = await broken.check(b"Subject: BROKEN\r\n\r\n", CTX)
    assert verdict.action is Action.TEMPFAIL
    absent = AntivirusCheck(ClamdClient(f"127.0.0.1:{free_port()}", 5.0), 1024, "accept")
    verdict = await absent.check(b"Subject: x\r\n\r\n", CTX)
    assert (verdict.action, verdict.add_headers) == (
        Action.ACCEPT,
        (("X-Virus-Status", "unchecked"),),
    )


def test_clamd_replies() -> None:
    assert parse_clamd_reply(b"stream: OK\0") is None
    assert parse_clamd_reply(b"stream: Eicar-Test\r\nSignature FOUND\0") == "Eicar-Test??Signature"
    with pytest.raises(ClamdError):
        parse_clamd_reply(b"")
    with pytest.raises(ClamdError):
        parse_clamd_reply(b"UNKNOWN COMMAND\0")


# ---------------------------------------------------------------- sender lists

RECIPIENTS = ("lan@sotest.gov.vn", "minh@sotest.gov.vn")


def setup_mailboxes(session: Session) -> None:
    agency = create_agency(session, "test", "sotest", "So Test")
    assert agency.id is not None
    create_domain(session, "test", "sotest.gov.vn", agency.id)
    for address in RECIPIENTS:
        create_mailbox(session, "test", address, "x", 10**9)


def ctx_for(mail_from: str, recipients: tuple[str, ...] = RECIPIENTS) -> MessageContext:
    return MessageContext(Direction.INBOUND, "192.0.2.1", "mx", mail_from, recipients)


def test_patterns_are_normalised() -> None:
    assert normalise_pattern(" @Example.VN ") == "@example.vn"
    assert normalise_pattern("Boss@Example.VN") == "boss@example.vn"
    with pytest.raises(ValueError):
        normalise_pattern("not an address")


async def test_block_and_allow_per_recipient(mail_store: MailStore) -> None:
    await mail_store.write(setup_mailboxes)
    await mail_store.write(
        lambda s: set_sender_rule(s, "u", RECIPIENTS[0], "@spammy.example", SenderRuleKind.BLOCK)
    )
    await mail_store.write(
        lambda s: set_sender_rule(s, "u", RECIPIENTS[1], "Boss@Partner.vn", SenderRuleKind.ALLOW)
    )
    check = SenderListCheck(mail_store)
    message = b"From: x@news.spammy.example\r\nSubject: s\r\n\r\nb\r\n"
    result = await Pipeline([check]).run(message, ctx_for("bounce@other.example"))
    assert result.action is Action.ACCEPT
    assert result.action_for("LAN@sotest.gov.vn") is Action.JUNK  # subdomain of a blocked domain
    assert result.action_for(RECIPIENTS[1]) is Action.ACCEPT

    # Spam verdicts put the message in Junk, except for a recipient who allows the sender.
    allowed = b"From: boss@partner.vn\r\n\r\nb\r\n"
    junk = await Pipeline([JunkEverything(), check]).run(allowed, ctx_for("boss@partner.vn"))
    assert junk.action is Action.JUNK
    assert [junk.action_for(r) for r in RECIPIENTS] == [Action.JUNK, Action.ACCEPT]


async def test_everyone_blocking_refuses_and_the_most_specific_rule_wins(
    mail_store: MailStore,
) -> None:
    await mail_store.write(setup_mailboxes)
    for recipient in RECIPIENTS:
        await mail_store.write(
            lambda s, r=recipient: set_sender_rule(s, "u", r, "@evil.vn", SenderRuleKind.BLOCK)  # type: ignore[misc]
        )
    check = SenderListCheck(mail_store)
    verdict = await check.check(b"Subject: s\r\n\r\nb\r\n", ctx_for("x@evil.vn"))
    assert (verdict.action, verdict.reply) == (
        Action.REJECT,
        "550 5.7.1 Message refused: the recipient does not accept mail from this sender",
    )
    await mail_store.write(
        lambda s: set_sender_rule(s, "u", RECIPIENTS[1], "friend@evil.vn", SenderRuleKind.ALLOW)
    )
    verdict = await check.check(b"Subject: s\r\n\r\nb\r\n", ctx_for("friend@evil.vn"))
    assert verdict.action is Action.ACCEPT
    assert dict(verdict.recipient_actions) == {
        RECIPIENTS[0]: Action.JUNK,
        RECIPIENTS[1]: Action.ACCEPT,
    }
    assert await mail_store.write(lambda s: remove_sender_rule(s, "u", RECIPIENTS[0], "@EVIL.vn"))
    verdict = await check.check(b"Subject: s\r\n\r\nb\r\n", ctx_for("x@evil.vn"))
    assert dict(verdict.recipient_actions) == {RECIPIENTS[1]: Action.JUNK}


class JunkEverything:
    name = "junk_everything"

    async def check(self, message: bytes, context: MessageContext) -> Verdict:
        return Verdict(self.name, Action.JUNK)


async def test_a_rejected_message_is_rejected_for_every_recipient() -> None:
    class Refuse:
        name = "refuse"

        async def check(self, message: bytes, context: MessageContext) -> Verdict:
            return Verdict(self.name, Action.REJECT, "550 5.7.1 no")

    class Allow:
        name = "allow"

        async def check(self, message: bytes, context: MessageContext) -> Verdict:
            return Verdict(self.name, recipient_actions=(("u@sotest.gov.vn", Action.ACCEPT),))

    result = await Pipeline([Allow(), Refuse()]).run(b"\r\n", CTX)
    assert result.action_for("u@sotest.gov.vn") is Action.REJECT


async def test_deleting_a_mailbox_deletes_its_sender_rules(mail_store: MailStore) -> None:
    from storage.accounts import delete_mailbox
    from storage.sender_rules import rules_for

    await mail_store.write(setup_mailboxes)
    rule = await mail_store.write(
        lambda s: set_sender_rule(s, "u", RECIPIENTS[0], "@evil.vn", SenderRuleKind.BLOCK)
    )
    await mail_store.write(lambda s: delete_mailbox(s, "u", RECIPIENTS[0]))
    assert await mail_store.read(lambda s: rules_for(s, [rule.mailbox_id])) == []
