"""Messages with NUL bytes: APPEND stores them as sent, FETCH sends 0x80, BINARY the real bytes.

RFC 9051 section 9 forbids NUL in a plain literal; Dovecot still stores such a message and
answers BODY[] with 0x80 in place of each NUL (BINARY[] returns the bytes in a literal8). A
BAD here makes mbsync abort a whole channel, so the sync of a mailbox holding such messages,
8-bit headers and broken MIME is tested too (third-party messages from ../shared/corpus when
it is present).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.imap.helpers import USER, RawClient, run_mbsync
from tests.support.harness import TEST_PASSWORD, LiveServer
from tests.support.requirements import require_program

_TUID = re.compile(rb"^X-TUID: [^\n]*\n", re.MULTILINE)
CORPUS = Path(os.environ.get("GOVMAIL_CORPUS", Path(__file__).parents[3] / "shared" / "corpus"))
# Broken MIME, 8-bit headers and odd nesting from the flanker fixtures (Apache-2.0).
CORPUS_MESSAGES = (
    "flanker/tests/fixtures/messages/torture.eml",
    "flanker/tests/fixtures/messages/missing-boundaries.eml",
    "flanker/tests/fixtures/messages/missing-final-boundary.eml",
    "flanker/tests/fixtures/messages/mailformed-headers.eml",
    "flanker/tests/fixtures/messages/enclosed-endless.eml",
    "flanker/tests/fixtures/messages/8bitmime.eml",
)

NUL_MESSAGE = (
    b"From: a@bo-ngoai.example\r\nTo: vanban@sotest.gov.vn\r\nSubject: nul\r\n"
    b"Message-ID: <nul1@bo-ngoai.example>\r\n\r\nbefore\x00after \x00\x00 end\r\n"
)
EIGHT_BIT_HEADER = (
    b"From: Nguy\xe1\xbb\x85n <b@bo-ngoai.example>\r\nTo: vanban@sotest.gov.vn\r\n"
    b"Subject: V\xc4\x83n b\xe1\xba\xa3n \xff raw\r\nMessage-ID: <eight@bo-ngoai.example>\r\n"
    b"\r\nN\xe1\xbb\x99i dung\r\n"
)
BROKEN_MIME = (
    b"From: c@bo-ngoai.example\r\nTo: vanban@sotest.gov.vn\r\nSubject: broken\r\n"
    b"Message-ID: <broken@bo-ngoai.example>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="never"\r\n\r\n'
    b"no boundary ever comes\r\n--almost\r\nContent-Type: text/plain\r\n\r\nx\x00y\r\n"
)


def _client(server: LiveServer) -> IMAPClient:
    host, port = server.address("imap")
    client = IMAPClient(host, port, ssl=False, timeout=10)
    client.login(USER, TEST_PASSWORD)
    return client


def _append_and_fetch(server: LiveServer) -> dict[bytes, bytes]:
    with _client(server) as client:
        client.append("INBOX", NUL_MESSAGE)
        client.select_folder("INBOX")
        (uid,) = client.search(["ALL"])
        fetched = client.fetch([uid], ["BODY.PEEK[]", "RFC822.SIZE", "BODY.PEEK[TEXT]"])[uid]
        return {key: value for key, value in fetched.items() if isinstance(value, bytes)} | {
            b"SIZE": str(fetched[b"RFC822.SIZE"]).encode()
        }


async def test_append_with_nul_is_stored_and_fetched_as_dovecot_does(
    protocol_server: LiveServer,
) -> None:
    await protocol_server.add_mailbox(USER)
    fetched = await asyncio.to_thread(_append_and_fetch, protocol_server)
    assert fetched[b"BODY[]"] == NUL_MESSAGE.replace(b"\x00", b"\x80")
    assert fetched[b"SIZE"] == str(len(NUL_MESSAGE)).encode()
    assert fetched[b"BODY[TEXT]"] == b"before\x80after \x80\x80 end\r\n"

    client = await RawClient.connect(protocol_server)
    await client.login()
    await client.command("SELECT INBOX")
    untagged, status = await client.command("FETCH 1 (BINARY.PEEK[] BINARY.PEEK[1])")
    assert status.startswith(b"OK"), status
    # The stored bytes are the ones sent: literal8 (RFC 3516 4.2) carries the NUL bytes.
    header = b"~{%d}\r\n" % len(NUL_MESSAGE)
    assert header + NUL_MESSAGE in untagged[0]
    assert b"~{21}\r\nbefore\x00after \x00\x00 end\r\n" in untagged[0]
    untagged, _ = await client.command("FETCH 1 (BODY.PEEK[1] RFC822)")
    assert b"{21}\r\nbefore\x80after \x80\x80 end\r\n" in untagged[0]
    assert b"\x00" not in untagged[0]
    await client.close()


def _corpus_messages() -> list[bytes]:
    paths = [CORPUS / name for name in CORPUS_MESSAGES]
    return [path.read_bytes() for path in paths if path.is_file()]


def _append_all(server: LiveServer, messages: list[bytes]) -> None:
    with _client(server) as client:
        for message in messages:
            client.append("INBOX", message)


async def _binary_bodies(server: LiveServer) -> list[bytes]:
    """BINARY[] of every message: the stored bytes (imapclient cannot read literal8)."""
    client = await RawClient.connect(server)
    await client.login()
    await client.command("EXAMINE INBOX")
    untagged, status = await client.command("FETCH 1:* (BINARY.PEEK[])")
    await client.close()
    assert status.startswith(b"OK"), status
    bodies = []
    for line in untagged:
        start = line.index(b"~{")
        size_end = line.index(b"}\r\n", start)
        size = int(line[start + 2 : size_end])
        bodies.append(line[size_end + 3 : size_end + 3 + size])
    return bodies


@pytest.mark.timeout(120)
async def test_mbsync_syncs_nul_8bit_and_broken_mime(
    protocol_server: LiveServer, tmp_path: Path
) -> None:
    require_program("mbsync", "isync")
    await protocol_server.add_mailbox(USER)
    messages = [NUL_MESSAGE, EIGHT_BIT_HEADER, BROKEN_MIME, *_corpus_messages()]
    await asyncio.to_thread(_append_all, protocol_server, messages)

    host, port = protocol_server.address("imaps")
    local = tmp_path / "mail"
    local.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        f"IMAPAccount govmail\nHost {host}\nPort {port}\nUser {USER}\nPass {TEST_PASSWORD}\n"
        f"SSLType IMAPS\nCertificateFile {protocol_server.config.cert_file}\nAuthMechs PLAIN\n\n"
        "IMAPStore remote\nAccount govmail\n\n"
        f"MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n"
        "Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\n"
        "Expunge Both\nSyncState *\n"
    )
    await run_mbsync(config)
    downloaded = sorted(
        _TUID.sub(b"", path.read_bytes())
        for sub in ("cur", "new")
        for path in (local / "INBOX" / sub).iterdir()
    )
    # Every stored message arrives, with LF line ends (maildir) and each NUL as 0x80; mbsync
    # adds its own X-TUID field to the header.
    stored = await _binary_bodies(protocol_server)
    assert len(stored) == len(messages)
    assert b"\x00" in stored[0]
    expected = sorted(m.replace(b"\r\n", b"\n").replace(b"\x00", b"\x80") for m in stored)
    assert downloaded == expected

    # The other way: a local message with NUL bytes is uploaded (APPEND) without an error.
    uploaded = b"From: d@sotest.gov.vn\nSubject: up\nMessage-ID: <up@sotest.gov.vn>\n\nu\x00p\n"
    (local / "INBOX" / "new" / "1700000000.local.host").write_bytes(uploaded)
    await run_mbsync(config)
    bodies = await _binary_bodies(protocol_server)
    assert len(bodies) == len(messages) + 1
    assert uploaded.replace(b"\n", b"\r\n") in [_TUID.sub(b"", body) for body in bodies]
