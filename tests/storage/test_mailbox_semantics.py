"""Storage semantics on SQLite and PostgreSQL: UIDs, MODSEQ, quota, blob dedup, group commit."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import Session, select

from storage.accounts import create_agency, create_domain, create_mailbox
from storage.changes import Change, FlagsChanged, MessageAdded, MessagesExpunged
from storage.mailbox_ops import (
    FlagMode,
    FolderExists,
    QuotaExceeded,
    copy_messages,
    create_folder,
    delete_folder,
    expunge,
    get_folder,
    list_folders,
    move_messages,
    rename_folder,
    store_flags,
)
from storage.models import Blob, Folder, Mailbox, Message
from storage.store import MailStore

MESSAGE = (
    b"From: An <an@example.gov.vn>\r\nTo: Binh <binh@sotest.gov.vn>\r\n"
    b"Subject: =?utf-8?b?VsSDbiBi4bqjbg==?=\r\nDate: Tue, 24 Nov 2026 09:00:00 +0700\r\n"
    b"Message-ID: <m1@example.gov.vn>\r\n\r\nN\xe1\xbb\x99i dung.\r\n"
)


def message(n: int) -> bytes:
    return MESSAGE.replace(b"m1@", f"m{n}@".encode())


async def make_mailbox(store: MailStore, address: str, quota: int = 10_000_000) -> int:
    def job(session: Session) -> int:
        domain = address.partition("@")[2]
        from storage.accounts import find_domain

        if find_domain(session, domain) is None:
            agency = create_agency(session, "test", domain.split(".")[0], domain)
            assert agency.id is not None
            create_domain(session, "test", domain, agency.id)
        mailbox = create_mailbox(session, "test", address, "", quota)
        assert mailbox.id is not None
        return mailbox.id

    return await store.write(job)


async def folder_of(store: MailStore, mailbox_id: int, name: str = "INBOX") -> Folder:
    return await store.read(lambda s: get_folder(s, mailbox_id, name))


async def uids(store: MailStore, folder_id: int) -> list[int]:
    def query(session: Session) -> list[int]:
        rows = session.exec(select(Message.uid).where(Message.folder_id == folder_id))
        return sorted(rows)

    return await store.read(query)


async def test_default_folders_have_special_use(mail_store: MailStore) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    folders = await mail_store.read(lambda s: list_folders(s, mailbox_id))
    assert {(f.name, f.special_use) for f in folders} == {
        ("INBOX", None),
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
        ("Archive", "\\Archive"),
    }
    assert len({f.uidvalidity for f in folders}) == len(folders)


async def test_uids_strictly_increase_and_are_never_reused(mail_store: MailStore) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    got = [(await mail_store.append(mailbox_id, "INBOX", message(i))).uid for i in range(3)]
    assert got == [1, 2, 3]
    inbox = await folder_of(mail_store, mailbox_id)
    assert inbox.id is not None
    folder_id = inbox.id
    await mail_store.write(lambda s: store_flags(s, folder_id, [2, 3], ["\\Deleted"], FlagMode.ADD))
    expunged = await mail_store.write(lambda s: expunge(s, folder_id))
    assert expunged == [2, 3]
    assert await uids(mail_store, folder_id) == [1]
    again = await mail_store.append(mailbox_id, "INBOX", message(9))
    assert again.uid == 4  # not 2: expunged UIDs are never handed out again
    assert (await folder_of(mail_store, mailbox_id)).uidnext == 5


async def test_recreated_folder_gets_new_uidvalidity(mail_store: MailStore) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    first = await mail_store.write(lambda s: create_folder(s, mailbox_id, "Công văn/2026"))
    await mail_store.write(lambda s: delete_folder(s, mailbox_id, "Công văn/2026"))
    second = await mail_store.write(lambda s: create_folder(s, mailbox_id, "Công văn/2026"))
    assert second.uidvalidity != first.uidvalidity
    with pytest.raises(FolderExists):
        await mail_store.write(lambda s: create_folder(s, mailbox_id, "Công văn/2026"))


async def test_modseq_rises_on_every_change(mail_store: MailStore) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    a = await mail_store.append(mailbox_id, "INBOX", message(1))
    b = await mail_store.append(mailbox_id, "INBOX", message(2))
    assert b.modseq > a.modseq
    folder_id = a.folder_id
    result = await mail_store.write(
        lambda s: store_flags(s, folder_id, [1], ["\\Seen"], FlagMode.ADD)
    )
    assert result.updated[0][1] > b.modseq
    seen_modseq = result.updated[0][1]
    # A store that changes nothing does not bump MODSEQ.
    noop = await mail_store.write(
        lambda s: store_flags(s, folder_id, [1], ["\\Seen"], FlagMode.ADD)
    )
    assert noop.updated == []
    # UNCHANGEDSINCE below the message's MODSEQ refuses the change (RFC 7162 3.1.3).
    refused = await mail_store.write(
        lambda s: store_flags(s, folder_id, [1], [], FlagMode.REPLACE, unchanged_since=a.modseq)
    )
    assert refused.modified == [1]
    await mail_store.write(lambda s: store_flags(s, folder_id, [2], ["\\Deleted"], FlagMode.ADD))
    await mail_store.write(lambda s: expunge(s, folder_id))
    folder = await folder_of(mail_store, mailbox_id)
    assert folder.highestmodseq > seen_modseq


async def test_quota_accounting(mail_store: MailStore) -> None:
    size = len(message(1))
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn", quota=size * 3)

    async def used() -> int:
        def query(session: Session) -> int:
            mailbox = session.get(Mailbox, mailbox_id)
            assert mailbox is not None
            return mailbox.used_bytes

        return await mail_store.read(query)

    first = await mail_store.append(mailbox_id, "INBOX", message(1))
    await mail_store.append(mailbox_id, "INBOX", message(2))
    assert await used() == 2 * size
    inbox = await folder_of(mail_store, mailbox_id)
    archive = await folder_of(mail_store, mailbox_id, "Archive")
    await mail_store.write(lambda s: copy_messages(s, inbox, archive, [first.uid]))
    assert await used() == 3 * size
    with pytest.raises(QuotaExceeded):
        await mail_store.append(mailbox_id, "INBOX", message(3))
    assert await used() == 3 * size  # the refused append changed nothing
    assert await uids(mail_store, first.folder_id) == [1, 2]
    # A move within the account is allowed at full quota: it frees what it takes.
    await mail_store.write(lambda s: move_messages(s, inbox, archive, [2]))
    assert await used() == 3 * size
    await mail_store.write(
        lambda s: store_flags(s, first.folder_id, [1], ["\\Deleted"], FlagMode.ADD)
    )
    await mail_store.write(lambda s: expunge(s, first.folder_id))
    assert await used() == 2 * size
    # SMTP delivery was promised at RCPT time: it may go over quota rather than lose mail.
    delivered = await mail_store.deliver(message(4), [(mailbox_id, "INBOX")])
    assert len(delivered) == 1
    delivered = await mail_store.deliver(message(5), [(mailbox_id, "INBOX")])
    assert await used() == 4 * size


async def test_identical_blobs_are_stored_once(mail_store: MailStore) -> None:
    an = await make_mailbox(mail_store, "an@sotest.gov.vn")
    binh = await make_mailbox(mail_store, "binh@sotest.gov.vn")
    results = await mail_store.deliver(message(1), [(an, "INBOX"), (binh, "INBOX")])
    assert [r.uid for r in results] == [1, 1]
    await mail_store.append(an, "Archive", message(1))
    blobs = await mail_store.read(lambda s: list(s.exec(select(Blob))))
    assert [(b.refcount, b.size) for b in blobs] == [(3, len(message(1)))]
    files = list(mail_store.blobs.all_digests())
    assert files == [blobs[0].sha256]
    # Deleting a folder releases its references.
    await mail_store.write(lambda s: delete_folder(s, an, "Archive"))
    blobs = await mail_store.read(lambda s: list(s.exec(select(Blob))))
    assert blobs[0].refcount == 2


async def test_rename_moves_children_and_inbox_rename_empties_inbox(
    mail_store: MailStore,
) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    await mail_store.write(lambda s: create_folder(s, mailbox_id, "Dự án/Con"))
    await mail_store.write(lambda s: rename_folder(s, mailbox_id, "Dự án", "Lưu trữ/Dự án"))
    names = {f.name for f in await mail_store.read(lambda s: list_folders(s, mailbox_id))}
    assert {"Lưu trữ", "Lưu trữ/Dự án", "Lưu trữ/Dự án/Con"} <= names
    assert "Dự án" not in names
    await mail_store.append(mailbox_id, "INBOX", message(1))
    await mail_store.write(lambda s: rename_folder(s, mailbox_id, "INBOX", "Cũ"))
    inbox = await folder_of(mail_store, mailbox_id)
    old = await folder_of(mail_store, mailbox_id, "Cũ")
    assert inbox.id is not None and old.id is not None
    assert await uids(mail_store, inbox.id) == []
    assert await uids(mail_store, old.id) == [1]


async def test_group_commit_isolates_a_failing_job(mail_store: MailStore) -> None:
    size = len(message(1))
    small = await make_mailbox(mail_store, "small@sotest.gov.vn", quota=size)
    big = await make_mailbox(mail_store, "big@sotest.gov.vn")
    await mail_store.append(small, "INBOX", message(0))
    seen: list[Change] = []
    mail_store.bus.subscribe(big, seen.append)
    mail_store.bus.subscribe(small, seen.append)
    outcomes = await asyncio.gather(
        *(mail_store.append(big, "INBOX", message(i)) for i in range(1, 21)),
        mail_store.append(small, "INBOX", message(99)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[-1], QuotaExceeded)
    good = outcomes[:-1]
    assert sorted(r.uid for r in good) == list(range(1, 21))  # type: ignore[union-attr]
    added = [c for c in seen if isinstance(c, MessageAdded)]
    assert sorted(c.uid for c in added) == list(range(1, 21))
    assert all(c.mailbox_id == big for c in added)  # nothing published for the failed job


async def test_changes_are_published_for_flags_and_expunge(mail_store: MailStore) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    appended = await mail_store.append(mailbox_id, "INBOX", message(1))
    seen: list[Change] = []
    unsubscribe = mail_store.bus.subscribe(mailbox_id, seen.append)
    folder_id = appended.folder_id
    await mail_store.write(lambda s: store_flags(s, folder_id, [1], ["\\Deleted"], FlagMode.ADD))
    await mail_store.write(lambda s: expunge(s, folder_id))
    unsubscribe()
    await mail_store.append(mailbox_id, "INBOX", message(2))
    assert [type(c) for c in seen] == [FlagsChanged, MessagesExpunged]
    assert isinstance(seen[0], FlagsChanged) and seen[0].flags == frozenset({"\\Deleted"})
    assert isinstance(seen[1], MessagesExpunged) and seen[1].uids == (1,)


async def test_message_row_caches_folded_search_headers(mail_store: MailStore) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    appended = await mail_store.append(mailbox_id, "INBOX", message(1))

    def query(session: Session) -> Message:
        row = session.exec(
            select(Message).where(Message.folder_id == appended.folder_id, Message.uid == 1)
        ).one()
        return row

    row = await mail_store.read(query)
    assert row.subject == "van ban"
    assert "an@example.gov.vn" in row.from_addr
    assert row.message_id == "<m1@example.gov.vn>"
    assert row.sent_date is not None and row.sent_date.hour == 9  # 09:00 +0700, zone dropped


async def test_bare_lf_is_stored_as_crlf(mail_store: MailStore) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    appended = await mail_store.append(mailbox_id, "INBOX", b"Subject: lf\n\nline 1\nline 2\r\n")

    def query(session: Session) -> Message:
        return session.exec(select(Message).where(Message.folder_id == appended.folder_id)).one()

    row = await mail_store.read(query)
    stored = mail_store.blobs.read(row.blob_sha256)
    assert stored == b"Subject: lf\r\n\r\nline 1\r\nline 2\r\n"
    assert row.size == len(stored)


def test_line_endings_already_crlf_are_untouched() -> None:
    from storage.message_index import normalise_line_endings

    crlf = b"A: b\r\n\r\nbody\r\n"
    assert normalise_line_endings(crlf) is crlf
    assert normalise_line_endings(b"a\rb\nc\r\n") == b"a\r\nb\r\nc\r\n"
