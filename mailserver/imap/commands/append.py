"""APPEND (RFC 9051 6.3.12) with MULTIAPPEND semantics, UIDPLUS APPENDUID (RFC 4315 3).

Every message of one APPEND is stored in one transaction: all or none (RFC 3502 section 6),
and quota is enforced by storage, so a full mailbox gets NO [OVERQUOTA] (RFC 9208 section 5)
and nothing is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session as DBSession

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import CommandFailed
from storage.blobs import StoredBlob
from storage.mailbox_ops import Appended, FolderNotFound, append_to_folder, folder_id_by_name
from storage.message_index import IndexedMessage

if TYPE_CHECKING:
    from mailserver.imap.session import Session


async def append(session: Session, command: p.Append) -> Done:
    account = session.require_account()
    name = session.mailbox_name_in(command.mailbox)
    if any(not message.data for message in command.messages):
        raise CommandFailed("Empty message", "CANNOT")
    stored: list[tuple[StoredBlob, IndexedMessage, p.AppendMessage]] = []
    for message in command.messages:
        blob, indexed = await session.store.store_blob(message.data)
        stored.append((blob, indexed, message))

    def job(s: DBSession) -> list[Appended]:
        try:
            folder_id = folder_id_by_name(s, account.mailbox_id, name)
        except FolderNotFound as exc:
            raise CommandFailed(f"No mailbox named {command.mailbox}", "TRYCREATE") from exc
        return [
            append_to_folder(
                s,
                account.mailbox_id,
                folder_id,
                blob,
                indexed,
                [f for f in message.flags if f != "\\Recent"],
                message.internal_date,
            )
            for blob, indexed, message in stored
        ]

    results = await session.store.write(job)
    code = r.ResponseCode(
        "APPENDUID", (results[0].uidvalidity, r.sequence_set([a.uid for a in results]))
    )
    return Done("APPEND completed", code)
