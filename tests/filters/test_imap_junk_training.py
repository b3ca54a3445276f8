"""IMAP MOVE into Junk teaches spamd that the message is spam (SPAMC TELL), after the commit."""

from __future__ import annotations

import asyncio
import imaplib

from filters.spam import SpamdClient
from filters.training import JunkTrainer
from mailserver.imap.commands import copy_move
from tests.filters.conftest import corpus_file
from tests.filters.test_spam import unique
from tests.support.harness import TEST_PASSWORD, LiveServer

USER = "an@sotest.gov.vn"


async def test_imap_move_into_junk_teaches_spamd(
    live_server: LiveServer, spamd_address: str
) -> None:
    instance = live_server.running.instance
    instance.junk_trainer = JunkTrainer(SpamdClient(spamd_address, 20.0))
    mailbox_id = await live_server.add_mailbox(USER)
    spam = unique(corpus_file("t/data/spam/003")).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    await instance.store.deliver(spam, [(mailbox_id, "INBOX")])
    host, port = live_server.address("imap")

    def move_to_junk() -> tuple[str, list[bytes]]:
        client = imaplib.IMAP4(host, port)
        try:
            client.login(USER, TEST_PASSWORD)
            client.select("INBOX")
            typ, data = client.uid("MOVE", "1", "Junk")
            return typ, data
        finally:
            client.logout()

    typ, _ = await asyncio.to_thread(move_to_junk)
    assert typ == "OK"
    await asyncio.gather(*copy_move._TRAINING)  # the background lesson, started after commit
    # spamd already learned these exact bytes as spam through the IMAP move.
    assert await instance.junk_trainer.note_move(spam, None, "\\Junk") == "spam: already known"
