"""SEARCH and UID SEARCH (RFC 9051 6.4.4), ESEARCH results (RFC 4731), SAVE (RFC 5182),
MODSEQ (RFC 7162 3.1.5).

The criteria are evaluated in a worker thread (mailserver/imap/search_eval.py) over the rows of
the folder; only messages in this session's view are considered, so the numbers returned are
the ones the client knows. TEXT and BODY keys are answered by the search index kept at delivery
(storage.search_index), never by reading message bodies. Criteria made only of TEXT/BODY and
FROM/TO/CC/SUBJECT keys (ANDed) are answered in SQL alone, without loading the folder's rows.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from sqlmodel import Session as DBSession

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import BadCommand
from mailserver.imap.limits import MAX_SEARCH_KEY
from mailserver.imap.search_eval import (
    Matcher,
    MessageText,
    SearchContext,
    column_needle,
    text_keys,
    uses_modseq,
)
from storage.message_queries import (
    SearchRow,
    message_rows,
    search_rows,
    uids_with_column_text,
)
from storage.message_summary import MessageSummary, summarize_message
from storage.search_index import TextField, matching_uids
from storage.store import MailStore
from storage.text_fold import exact_query, fold_query

if TYPE_CHECKING:
    from mailserver.imap.session import Session


def _raw_loader(store: MailStore, folder_id: int, row: SearchRow) -> tuple[bytes, MessageSummary]:
    """Runs in the worker thread: the message's bytes and cached summary."""
    raw = store.blobs.read(row.blob_sha256)
    with store.db.read_session() as s:
        rows = message_rows(s, folder_id, [row.uid], with_summary=True)
    summary_bytes = rows[0].summary if rows else None
    if summary_bytes is None:  # expunged meanwhile: parse the bytes we already have
        return raw, summarize_message(raw)
    return raw, MessageSummary.from_json(summary_bytes)


def index_hits(
    session: DBSession, folder_id: int, keys: list[p.SearchText], folder_size: int | None = None
) -> dict[p.SearchText, frozenset[int]]:
    """The UIDs the search index finds for each TEXT/BODY key."""
    return {
        key: frozenset(
            matching_uids(
                session,
                folder_id,
                fold_query(key.value),
                TextField.BODY if key.body_only else TextField.TEXT,
                folder_size,
                exact_query(key.value),
            )
        )
        for key in keys
    }


def index_keys(key: p.SearchKey) -> list[p.SearchText | p.SearchHeader] | None:
    """The keys of criteria that the index and the stored columns answer fully, else None.

    That is TEXT/BODY keys and FROM/TO/CC/SUBJECT with a non-blank value, ANDed.
    """
    if isinstance(key, p.SearchText):
        return [key]
    if isinstance(key, p.SearchHeader):
        return [key] if column_needle(key) is not None else None
    if isinstance(key, p.SearchAnd) and key.keys:
        found: list[p.SearchText | p.SearchHeader] = []
        for inner in key.keys:
            keys = index_keys(inner)
            if keys is None:
                return None
            found.extend(keys)
        return found
    return None


def indexed_search(
    session: DBSession,
    folder_id: int,
    keys: list[p.SearchText | p.SearchHeader],
    folder_size: int,
) -> set[int]:
    """UIDs matching every key (see index_keys): columns first, they are the cheaper."""
    result: set[int] | None = None
    for key in keys:
        if isinstance(key, p.SearchHeader):
            answered = column_needle(key)
            assert answered is not None
            column, needle = answered
            found = uids_with_column_text(session, folder_id, column, needle)
            result = found if result is None else result & found
            if not result:
                return set()
    texts = [key for key in keys if isinstance(key, p.SearchText)]
    for hits in index_hits(session, folder_id, texts, folder_size).values():
        result = set(hits) if result is None else result & hits
        if not result:
            return set()
    return result or set()


def run_search(
    store: MailStore,
    folder_id: int,
    rows: list[SearchRow],
    key: p.SearchKey,
    context: SearchContext,
    text_hits: dict[p.SearchText, frozenset[int]],
) -> list[SearchRow]:
    """Blocking: the rows that match ``key``, in UID order."""
    matcher = Matcher(key, context, text_hits)
    found: list[SearchRow] = []
    for row in rows:
        if context.seq_of(row.uid) is None:
            continue
        text = MessageText(partial(_raw_loader, store, folder_id, row))
        if matcher.matches(row, text):
            found.append(row)
    return found


async def search(session: Session, command: p.Search) -> Done:
    selected = session.require_selected()
    folder_id = selected.folder_id
    with_modseq = uses_modseq(command.criteria)
    if with_modseq:
        session.enable_condstore()
    keys = list(dict.fromkeys(text_keys(command.criteria)))
    folder_size = selected.exists
    if any(len(key.value.encode("utf-8")) > MAX_SEARCH_KEY for key in keys):
        raise BadCommand("Search key too long", "TOOBIG")

    def load(s: DBSession) -> tuple[list[SearchRow], dict[p.SearchText, frozenset[int]]]:
        return search_rows(s, folder_id), index_hits(s, folder_id, keys, folder_size)

    answerable = index_keys(command.criteria)
    if answerable is not None and not with_modseq:
        # The common "find this text/subject/sender" search: the index and the stored columns
        # answer it, so the folder's rows are not loaded (a 100,000-message folder stays cheap).
        matched = await session.store.read(
            lambda s: indexed_search(s, folder_id, answerable, folder_size)
        )
        found_uids = sorted(uid for uid in matched if selected.seq_of(uid) is not None)
        return _answer(session, command, found_uids, [], with_modseq=False)

    rows, hits = await session.store.read(load)
    context = SearchContext(
        seq_of=selected.seq_of,
        exists=selected.exists,
        largest_uid=selected.largest_uid,
        saved=frozenset(session.saved_search or ()),
        recent=frozenset(selected.recent),
    )
    # The view does not change while this runs: one command at a time, and updates are
    # applied only by this session's own flush.
    found = await session.store.offload(
        run_search, session.store, folder_id, rows, command.criteria, context, hits
    )
    return _answer(session, command, [row.uid for row in found], found, with_modseq)


def _answer(
    session: Session,
    command: p.Search,
    found_uids: list[int],
    found: list[SearchRow],
    with_modseq: bool,
) -> Done:
    """Send SEARCH or ESEARCH for the matching UIDs (in UID order)."""
    selected = session.require_selected()
    numbers = [uid if command.uid else (selected.seq_of(uid) or 0) for uid in found_uids]
    highest = max((row.modseq for row in found), default=0)
    verb = ("UID " if command.uid else "") + "SEARCH"
    options = command.return_options
    if options is None and session.rev2:
        # RFC 9051 6.4.4: IMAP4rev2 answers every SEARCH with ESEARCH.
        options = frozenset({p.SearchReturn.ALL})
    if options is None:
        items = [r.number(n) for n in numbers]
        if with_modseq and found:
            items.append(b"(MODSEQ " + r.number(highest) + b")")
        session.send(r.untagged(b"SEARCH", *items) if items else b"* SEARCH\r\n")
        return Done(f"{verb} completed")
    wanted = set(options) or {p.SearchReturn.ALL}
    if p.SearchReturn.SAVE in wanted:
        session.saved_search = list(found_uids)
        wanted.discard(p.SearchReturn.SAVE)
        if not wanted:
            # RFC 5182 2.1: SAVE alone returns no ESEARCH response.
            return Done(f"{verb} completed, result saved")
    parts: list[bytes] = [b"(TAG " + r.quoted(command.tag) + b")"]
    if command.uid:
        parts.append(b"UID")
    if p.SearchReturn.MIN in wanted and numbers:
        parts += [b"MIN", r.number(min(numbers))]
    if p.SearchReturn.MAX in wanted and numbers:
        parts += [b"MAX", r.number(max(numbers))]
    if p.SearchReturn.ALL in wanted and numbers:
        parts += [b"ALL", r.sequence_set(numbers)]
    if p.SearchReturn.COUNT in wanted:
        parts += [b"COUNT", r.number(len(numbers))]
    if with_modseq and found:
        parts += [b"MODSEQ", r.number(_esearch_modseq(wanted, numbers, found))]
    session.send(r.untagged(b"ESEARCH", *parts))
    return Done(f"{verb} completed")


def _esearch_modseq(wanted: set[p.SearchReturn], numbers: list[int], found: list[SearchRow]) -> int:
    """RFC 7162 3.1.5: with only MIN and/or MAX returned, the highest MODSEQ of the messages
    returned; otherwise of every message found. ``numbers`` and ``found`` are in one order."""
    if wanted and wanted <= {p.SearchReturn.MIN, p.SearchReturn.MAX}:
        returned: set[int] = set()
        if p.SearchReturn.MIN in wanted:
            returned.add(min(numbers))
        if p.SearchReturn.MAX in wanted:
            returned.add(max(numbers))
        found = [row for n, row in zip(numbers, found, strict=True) if n in returned]
    return max(row.modseq for row in found)
