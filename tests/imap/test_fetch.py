"""FETCH over a real connection: RFC822 items and BINARY (RFC 3516) decoding.

Cases follow Dovecot's imaptest scripted groups (fetch-body, fetch-binary-mime-qp).
"""

from __future__ import annotations

from tests.imap.helpers import USER, RawClient, deliver
from tests.support.harness import LiveServer

PLAIN = (
    b"From: User2 <user2@domain.org>\r\n"
    b"Date: Sat, 24 Mar 2007 23:00:00 +0200\r\n"
    b"Subject: s22\r\n"
    b"\r\n"
    b"body22\r\n"
)


async def _selected_client(server: LiveServer, *messages: bytes) -> RawClient:
    await server.add_mailbox(USER)
    for raw in messages:
        await deliver(server, raw)
    client = await RawClient.connect(server)
    await client.login()
    _, status = await client.command("SELECT INBOX")
    assert status.startswith(b"OK"), status
    return client


async def test_fetch_rfc822_returns_the_message_and_sets_seen(
    protocol_server: LiveServer,
) -> None:
    client = await _selected_client(protocol_server, PLAIN)
    untagged, status = await client.command("FETCH 1 RFC822")
    assert status == b"OK FETCH completed"
    literal = b"{%d}\r\n" % len(PLAIN) + PLAIN
    assert untagged == [b"* 1 FETCH (RFC822 " + literal + b" FLAGS (\\Recent \\Seen))"]
    await client.close()


QP_MULTIPART = (
    b"From: user@domain.org\r\n"
    b"Date: Sat, 24 Mar 2007 23:00:00 +0200\r\n"
    b"Mime-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="foo\r\n bar"\r\n'
    b"\r\n"
    b"Root MIME prologue\r\n"
    b"\r\n"
    b"--foo bar\r\n"
    b"Content-Type: text/x-myown; charset=us-ascii\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\n"
    b"foo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n"
    b"\r\n"
    b"--foo bar\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"begin 644 a\r\n#86)C\r\n`\r\nend\r\n"
    b"\r\n"
    b"--foo bar--\r\n"
    b"Root MIME epilogue\r\n"
)
# RFC 2045 6.7: trailing whitespace deleted, soft breaks joined (also "= " + whitespace).
QP_DECODED = (
    b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n"
)


async def test_binary_decodes_quoted_printable_and_its_ranges(
    protocol_server: LiveServer,
) -> None:
    client = await _selected_client(protocol_server, QP_MULTIPART)
    untagged, _ = await client.command("FETCH 1 (BINARY.SIZE[1])")
    assert untagged == [b"* 1 FETCH (BINARY.SIZE[1] %d)" % len(QP_DECODED)]
    assert len(QP_DECODED) == 65  # imaptest fetch-binary-mime-qp
    untagged, _ = await client.command("FETCH 1 (BINARY.PEEK[1])")
    assert untagged == [b"* 1 FETCH (BINARY[1] ~{65}\r\n" + QP_DECODED + b")"]
    for start, length in ((0, 10), (15, 10), (40, 100)):
        untagged, _ = await client.command(f"FETCH 1 (BINARY.PEEK[1]<{start}.{length}>)")
        piece = QP_DECODED[start : start + length]
        assert untagged == [b"* 1 FETCH (BINARY[1]<%d> ~{%d}\r\n%s)" % (start, len(piece), piece)]
    await client.close()


async def test_binary_refuses_unknown_encodings_and_multiparts_with_no(
    protocol_server: LiveServer,
) -> None:
    client = await _selected_client(protocol_server, QP_MULTIPART)
    untagged, status = await client.command("FETCH 1 (BINARY.PEEK[2])")
    assert status.startswith(b"NO [UNKNOWN-CTE] "), status  # RFC 3516 4.3
    assert untagged == []
    _, status = await client.command("FETCH 1 (BINARY.PEEK[])")
    assert status.startswith(b"OK"), status  # the whole message: no decoding
    # Part 1 of a message whose part 1 is itself multipart: well-formed, so NO, not BAD.
    nested = (
        b"From: a@sotest.gov.vn\r\nMime-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        b"--outer\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
        b"--in\r\nContent-Type: text/plain\r\n\r\nx\r\n--in--\r\n--outer--\r\n"
    )
    await deliver(protocol_server, nested)
    await client.command("NOOP")
    _, status = await client.command("FETCH 2 (BINARY.PEEK[1])")
    assert status.startswith(b"NO "), status
    await client.close()
