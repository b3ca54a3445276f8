"""MX over real sockets: extensions, recipients (mailboxes, aliases, groups, plus), refusals,
relay tricks, limits, the filter pipeline's verdicts, and exactly one copy per folder."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from filters.pipeline import Action, MessageContext, Pipeline, Verdict
from tests.smtp.helpers import (
    DOMAIN,
    Dialogue,
    add_alias,
    add_group,
    blocking,
    folder_messages,
    message,
    sendmail,
    set_mailbox,
)
from tests.support.harness import LiveServer

USER = f"thanhnn.skhcn@{DOMAIN}"


async def test_ehlo_advertises_the_extensions_and_no_auth(live_server: LiveServer) -> None:
    dialogue = await Dialogue.open(live_server.address("smtp_mx"), ehlo=False)
    lines = await dialogue.send("EHLO peer.example.org")
    assert lines == [
        "250-mail.test.gov.vn",
        "250-SIZE 41943040",
        "250-8BITMIME",
        "250-SMTPUTF8",
        "250-PIPELINING",
        "250-ENHANCEDSTATUSCODES",
        "250-DSN",
        "250 STARTTLS",
    ]
    # RFC 2034: once advertised, aiosmtpd's own replies get a code too.
    assert await dialogue.last("RCPT TO:<a@b.c>") == "503 5.5.1 Error: need MAIL command"
    assert await dialogue.last("AUTH PLAIN AGFAYg==") == "503 5.5.1 AUTH not available on this port"
    assert await dialogue.last("NOOP") == "250 2.0.0 OK"
    await dialogue.close()


async def test_recipient_rules(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    await live_server.add_mailbox(f"full@{DOMAIN}", quota_bytes=10)
    await set_mailbox(live_server, f"full@{DOMAIN}", used_bytes=10)
    await live_server.add_mailbox(f"locked@{DOMAIN}")
    await set_mailbox(live_server, f"locked@{DOMAIN}", state="locked")
    await live_server.add_mailbox(f"gone@{DOMAIN}")
    await set_mailbox(live_server, f"gone@{DOMAIN}", state="disabled")
    dialogue = await Dialogue.open(live_server.address("smtp_mx"))
    assert await dialogue.last("MAIL FROM:<someone@example.org>") == "250 2.1.0 OK"
    replies = {
        rcpt: await dialogue.last(f"RCPT TO:<{rcpt}>")
        for rcpt in (
            USER,
            USER.upper(),
            f"thanhnn.skhcn+hop@{DOMAIN}",
            f"nobody@{DOMAIN}",
            f"full@{DOMAIN}",
            f"locked@{DOMAIN}",
            f"gone@{DOMAIN}",
            "user@example.org",
        )
    }
    assert replies == {
        USER: "250 2.1.5 OK",
        USER.upper(): "250 2.1.5 OK",
        f"thanhnn.skhcn+hop@{DOMAIN}": "250 2.1.5 OK",
        f"nobody@{DOMAIN}": "550 5.1.1 Recipient address rejected: user unknown",
        f"full@{DOMAIN}": "452 4.2.2 Mailbox full, try again later",
        f"locked@{DOMAIN}": "250 2.1.5 OK",
        f"gone@{DOMAIN}": "550 5.2.1 Mailbox disabled, not accepting messages",
        "user@example.org": "550 5.7.1 Relaying denied: not a local domain",
    }
    assert await dialogue.last("DATA") == "354 End data with <CR><LF>.<CR><LF>"
    final = await dialogue.send("From: someone@example.org\r\nSubject: hi\r\n\r\nbody\r\n.")
    assert final[0].startswith("250 2.0.0 OK queued as ")
    await dialogue.close()
    # Three addresses of one account, one copy (never twice in the same folder).
    inbox = await folder_messages(live_server, USER)
    assert len(inbox) == 1
    # The Received line is ours; the inbound filters may add their headers above it.
    assert b"\nReceived: from client.example.org ([127.0.0.1])\r\n" in b"\n" + inbox[0]
    assert inbox[0].endswith(b"Subject: hi\r\n\r\nbody\r\n")
    assert len(await folder_messages(live_server, f"locked@{DOMAIN}")) == 1


RELAY_TRICKS = [
    ("<user%example.org@sotest.gov.vn>", "550 5.7.1 Relaying denied"),
    ("<example.org!user@sotest.gov.vn>", "550 5.7.1 Relaying denied"),
    ("<@sotest.gov.vn:user@example.org>", "550 5.7.1 Relaying denied"),
    ('<"user@example.org"@sotest.gov.vn>', "550 5.7.1 Relaying denied"),
    ("<postmaster@[127.0.0.1]>", "550 5.7.1 Relaying denied"),
    ("<user@sotest.gov.vn.>", "501 5.1.3 Bad recipient address syntax"),
    ("<user@sotest.gov.vn..>", "501 5.1.3 Bad recipient address syntax"),
    # Cyrillic "о" in "sotest": a look-alike of our own domain.
    ("<user@s\u043etest.gov.vn>", "553 5.6.7 Non-ASCII addresses require SMTPUTF8"),
    ("<user@sotest.gov.vn", "501 5.1.3 Bad recipient address syntax"),
    ("user@sotest.gov.vn", "501 5.1.3 Bad recipient address syntax"),
    ("<>", "501 5.1.3 Bad recipient address syntax"),
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_every_relay_trick_is_refused(live_server: LiveServer) -> None:
    await live_server.add_mailbox(f"user@{DOMAIN}")
    dialogue = await Dialogue.open(live_server.address("smtp_mx"))
    await dialogue.send("MAIL FROM:<a@example.org>")
    for path, reply in RELAY_TRICKS:
        assert await dialogue.last(f"RCPT TO:{path}") == reply, path
    # With SMTPUTF8 the look-alike parses, and is still refused.
    await dialogue.send("RSET")
    await dialogue.send("MAIL FROM:<a@example.org> SMTPUTF8")
    assert await dialogue.last("RCPT TO:<user@s\u043etest.gov.vn>") == "550 5.7.1 Relaying denied"
    assert await dialogue.last("RCPT TO:<user@xn--stest-3ve.gov.vn>") == "550 5.7.1 Relaying denied"
    assert await dialogue.last("DATA") == "503 5.5.1 Error: need RCPT command"
    await dialogue.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_parameters_sizes_and_recipient_limit(live_server: LiveServer) -> None:
    await live_server.add_mailbox(f"user@{DOMAIN}")
    dialogue = await Dialogue.open(live_server.address("smtp_mx"))
    too_big = 41943041
    assert await dialogue.last(f"MAIL FROM:<a@example.org> SIZE={too_big}") == (
        "552 5.3.4 Message size exceeds fixed maximum message size"
    )
    assert await dialogue.last("MAIL FROM:<a@example.org> BODY=BINARYMIME") == (
        "501 5.5.4 Syntax error in parameters"
    )
    assert await dialogue.last("MAIL FROM:<a@example.org> FOO=1") == (
        "555 5.5.4 Unsupported parameter"
    )
    assert await dialogue.last("MAIL FROM:<a@example.org> RET=FULL RET=HDRS") == (
        "501 5.5.4 Syntax error in parameters"
    )
    ok = "MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1 AUTH=<>"
    assert await dialogue.last(ok) == "250 2.1.0 OK"
    assert (
        await dialogue.last("MAIL FROM:<b@example.org>") == "503 5.5.1 Error: nested MAIL command"
    )
    rcpt = f"RCPT TO:<user@{DOMAIN}>"
    assert await dialogue.last(f"{rcpt} NOTIFY=NEVER,FAILURE") == (
        "501 5.5.4 Syntax error in parameters"
    )
    assert await dialogue.last(f"{rcpt} NOTIFY=SUCCESS,DELAY ORCPT=rfc822;user+40x") == (
        "250 2.1.5 OK"
    )
    for n in range(99):
        await dialogue.send(f"RCPT TO:<user+{n}@{DOMAIN}>")
    assert await dialogue.last(rcpt) == "452 4.5.3 Too many recipients"
    await dialogue.send("RSET")
    # Null reverse path (bounces) is accepted on MX.
    assert await dialogue.last("MAIL FROM:<>") == "250 2.1.0 OK"
    await dialogue.close()


async def test_aliases_groups_and_their_send_policies(live_server: LiveServer) -> None:
    a = await live_server.add_mailbox(f"a@{DOMAIN}")
    await live_server.add_mailbox(f"b@{DOMAIN}")
    await add_alias(live_server, f"vanthu@{DOMAIN}", [f"a@{DOMAIN}", f"b@{DOMAIN}"], owner=a)
    await add_alias(live_server, f"fwd@{DOMAIN}", [f"a@{DOMAIN}", "x@gmail.com"])
    await add_group(live_server, f"all@{DOMAIN}", [f"a@{DOMAIN}", f"b@{DOMAIN}"], "anyone")
    await add_group(live_server, f"members@{DOMAIN}", [f"a@{DOMAIN}", "ext@sotp.gov.vn"], "members")
    await add_group(live_server, f"staff@{DOMAIN}", [f"b@{DOMAIN}"], "same_agency")
    await add_group(live_server, f"auth@{DOMAIN}", [f"b@{DOMAIN}"], "authenticated")
    await add_group(live_server, f"loop1@{DOMAIN}", [f"loop2@{DOMAIN}", f"a@{DOMAIN}"], "anyone")
    await add_group(live_server, f"loop2@{DOMAIN}", [f"loop1@{DOMAIN}"], "anyone")
    mx = live_server.address("smtp_mx")
    denied = "550 5.7.1 Sender not allowed to write to this group"
    dialogue = await Dialogue.open(mx)
    await dialogue.send("MAIL FROM:<outsider@example.org>")
    assert await dialogue.last(f"RCPT TO:<members@{DOMAIN}>") == denied
    assert await dialogue.last(f"RCPT TO:<staff@{DOMAIN}>") == denied
    assert await dialogue.last(f"RCPT TO:<auth@{DOMAIN}>") == denied
    await dialogue.send("RSET")
    await dialogue.send("MAIL FROM:<ext@sotp.gov.vn>")
    assert await dialogue.last(f"RCPT TO:<members@{DOMAIN}>") == "250 2.1.5 OK"
    await dialogue.close()

    await blocking(
        sendmail,
        mx,
        "x@example.org",
        [f"vanthu@{DOMAIN}", f"all@{DOMAIN}"],
        b"From: x@example.org\r\nS: 1\r\n\r\n1\r\n",
    )
    await blocking(
        sendmail,
        mx,
        "x@example.org",
        [f"loop1@{DOMAIN}"],
        b"From: x@example.org\r\nS: 2\r\n\r\n2\r\n",
    )
    await blocking(
        sendmail,
        mx,
        "x@example.org",
        [f"fwd@{DOMAIN}"],
        b"From: x@example.org\r\nS: 3\r\n\r\n3\r\n",
    )
    a_inbox = await folder_messages(live_server, f"a@{DOMAIN}")
    b_inbox = await folder_messages(live_server, f"b@{DOMAIN}")
    # alias + group naming the same people: one copy each; the self-referencing groups end.
    assert [m.endswith(b"\r\n\r\n1\r\n") for m in b_inbox] == [True]
    assert [m.rsplit(b"\r\n\r\n", 1)[1] for m in a_inbox] == [b"1\r\n", b"2\r\n", b"3\r\n"]
    # x@gmail.com is outside government domains: never forwarded, nothing queued.
    assert await live_server.running.instance.store.read(_queue_size) == 0


def _queue_size(session: object) -> int:
    from sqlmodel import Session, func, select

    from storage.models import QueueEntry

    assert isinstance(session, Session)
    return session.exec(select(func.count()).select_from(QueueEntry)).one()


class _Verdicts:
    """A pipeline check that answers what the test asks for."""

    name = "test"

    def __init__(self, action: Action, reply: str | None = None) -> None:
        self.action = action
        self.reply = reply
        self.seen: list[MessageContext] = []

    async def check(self, message: bytes, context: MessageContext) -> Verdict:
        self.seen.append(context)
        return Verdict(
            "test", self.action, self.reply, add_headers=(("X-Test-Verdict", self.action),)
        )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_inbound_pipeline_verdicts_are_honoured(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    instance = live_server.running.instance
    mx = live_server.address("smtp_mx")
    raw = message("a@example.org", USER)

    junk = _Verdicts(Action.JUNK)
    instance.inbound_pipeline = Pipeline([junk])
    await blocking(sendmail, mx, "a@example.org", [USER], raw)
    assert junk.seen[0].mail_from == "a@example.org"
    assert junk.seen[0].recipients == (USER,)
    stored = await folder_messages(live_server, USER, "Junk")
    assert len(stored) == 1 and stored[0].startswith(b"X-Test-Verdict: junk\r\nReceived: ")
    assert await folder_messages(live_server, USER) == []

    instance.inbound_pipeline = Pipeline([_Verdicts(Action.REJECT, "550 5.7.1 Spam")])
    with pytest.raises(smtplib.SMTPDataError) as rejected:
        await blocking(sendmail, mx, "a@example.org", [USER], raw)
    assert (rejected.value.smtp_code, rejected.value.smtp_error) == (550, b"5.7.1 Spam")

    instance.inbound_pipeline = Pipeline([_Verdicts(Action.TEMPFAIL)])
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        await blocking(sendmail, mx, "a@example.org", [USER], raw)
    assert deferred.value.smtp_code == 451
    assert await folder_messages(live_server, USER) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_connection_limit_and_idle_timeout(tmp_path: object, db_url: str) -> None:
    from pathlib import Path

    from tests.support.harness import start_live_server
    from tests.support.harness import test_config as make_config

    assert isinstance(tmp_path, Path)
    config = make_config(
        tmp_path / "d",
        db_url,
        smtp={"max_connections_per_ip": 2, "command_timeout_seconds": 0.3},
    )
    server = await start_live_server(config)
    try:
        mx = server.address("smtp_mx")
        first = await Dialogue.open(mx, ehlo=False)
        second = await Dialogue.open(mx, ehlo=False)
        reader, writer = await asyncio.open_connection(*mx)
        assert await reader.read() == b"421 4.7.0 Too many connections from your address\r\n"
        writer.close()
        # Idle past the command timeout: told why, then closed (RFC 5321 4.5.3.2).
        assert await first.reply() == ["421 4.4.2 Timeout waiting for a command, closing"]
        assert await first.reply() == ["<closed>"]
        await second.close()
    finally:
        await server.running.stop(grace=1.0)
