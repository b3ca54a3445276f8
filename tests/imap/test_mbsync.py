"""mbsync (isync) syncing a mailbox both ways over implicit TLS: messages, flags, deletions."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session as DBSession

from storage.blobs import StoredBlob
from storage.mailbox_ops import append_message, get_folder
from storage.message_index import IndexedMessage, index_message
from tests.imap.helpers import USER, RawClient, run_mbsync
from tests.support.harness import TEST_PASSWORD, LiveServer
from tests.support.requirements import require_program

MESSAGES = 1000


@pytest.fixture(autouse=True)
def _mbsync_installed() -> None:
    require_program("mbsync", "isync")


def _message(number: int) -> bytes:
    return (
        f"From: so{number}@sotest.gov.vn\r\nTo: {USER}\r\nSubject: Văn bản số {number}\r\n"
        f"Message-ID: <m{number}@sotest.gov.vn>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nNội dung {number}.\r\n"
    ).encode()


def _maildir_files(root: Path) -> list[Path]:
    return [p for sub in ("cur", "new") for p in (root / sub).iterdir()]


@pytest.mark.timeout(120)
async def test_mbsync_two_way_sync(bulk_server: LiveServer, tmp_path: Path) -> None:
    live_server = bulk_server
    mailbox_id = await live_server.add_mailbox(USER)
    store = live_server.running.instance.store

    def prepare() -> list[tuple[StoredBlob, IndexedMessage]]:
        raws = [_message(n) for n in range(1, MESSAGES + 1)]
        return [(store.blobs.put(raw), index_message(raw)) for raw in raws]

    prepared = await store.offload(prepare)

    def fill(session: DBSession) -> None:
        folder = get_folder(session, mailbox_id, "INBOX")
        for number, (blob, indexed) in enumerate(prepared, start=1):
            flags = ("\\Seen",) if number % 2 else ()
            append_message(session, folder, blob, indexed, flags)

    await store.write(fill)
    host, port = live_server.address("imaps")
    local = tmp_path / "mail"
    local.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        f"IMAPAccount govmail\nHost {host}\nPort {port}\nUser {USER}\nPass {TEST_PASSWORD}\n"
        f"SSLType IMAPS\nCertificateFile {live_server.config.cert_file}\nAuthMechs PLAIN\n\n"
        "IMAPStore remote\nAccount govmail\n\n"
        f"MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n"
        "Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX Archive\nCreate Both\n"
        f"Expunge Both\nSyncState *\n"
    )
    await run_mbsync(config)
    files = _maildir_files(local / "INBOX")
    assert len(files) == MESSAGES
    seen = [f for f in files if f.name.endswith(",S") or ":2,S" in f.name]
    assert len(seen) == MESSAGES // 2

    # Locally: flag ten messages, delete five, add one; then sync back.
    unseen = sorted(f for f in files if f not in seen)
    for path in unseen[:10]:
        path.rename(path.parent.parent / "cur" / (path.name.split(":2,")[0] + ":2,F"))
    for path in sorted(seen)[:5]:
        path.unlink()
    (local / "INBOX" / "new" / "1700000000.local.host").write_bytes(_message(MESSAGES + 1))
    await run_mbsync(config)

    client = await RawClient.connect(live_server)
    await client.login()
    untagged, _ = await client.command("STATUS INBOX (MESSAGES)")
    assert untagged == [b"* STATUS INBOX (MESSAGES %d)" % (MESSAGES - 5 + 1)]
    await client.command("SELECT INBOX")
    untagged, _ = await client.command("SEARCH FLAGGED")
    assert len(untagged[0].split()) - 2 == 10
    untagged, _ = await client.command(f'UID SEARCH SUBJECT "van ban so {MESSAGES + 1}"')
    assert untagged == [b"* SEARCH %d" % (MESSAGES + 1)]
    await client.close()
